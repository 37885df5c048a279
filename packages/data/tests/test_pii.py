import pytest

from cs336_data import mask_emails, mask_ips, mask_phone_numbers
from cs336_data.pii import EMAIL_TOKEN, IP_TOKEN, PHONE_TOKEN

EMAILS = [
    "test@gmail.com",
    "first.last+tag@sub.example.co.uk",
    "a_b-c@my-domain.org",
    "X123@cs.stanford.edu",
]
NOT_EMAILS = ["@handle", "user@localhost", "foo@bar", "a@b.c", "email me at example dot com"]
PHONES = [
    "2831823829",
    "(283)-182-3829",
    "(283) 182 3829",
    "283-182-3829",
    "283.182.3829",
    "+1 283 182 3829",
    "+1-283-182-3829",
    "1-800-555-0199",
    "+44 20 7946 0958",
    "+49 30 12345678",
    "+33 1 23 45 67 89",
    "+91 98765 43210",
]
NOT_PHONES = [
    "2023-01-15",
    "15.01.2023",
    "version 1.2.3",
    "$1,234,567.89",
    "12345",
    "3.14159265358979",
    "ISBN 978-3-16-148410-0",
    "order #123456789012345678",
    "192.168.0.1",
    "+1 2",
    "10:30-11:45",
]
IPS = ["192.168.0.1", "8.8.8.8", "255.255.255.255", "0.0.0.0", "10.0.0.254"]
NOT_IPS = ["256.1.1.1", "1.2.3", "version 1.2.3.4.5", "v1.2.3.4", "2023.01.15", "192.168.1.300"]


@pytest.mark.parametrize("email", EMAILS)
def test_email_masked_in_sentence(email):
    text = f"Contact {email}, or call."
    assert mask_emails(text) == (f"Contact {EMAIL_TOKEN}, or call.", 1)


@pytest.mark.parametrize("text", NOT_EMAILS)
def test_non_emails_kept(text):
    assert mask_emails(text) == (text, 0)


@pytest.mark.parametrize("phone", PHONES)
def test_phone_masked_in_sentence(phone):
    text = f"Call {phone} now."
    assert mask_phone_numbers(text) == (f"Call {PHONE_TOKEN} now.", 1)


@pytest.mark.parametrize("text", NOT_PHONES)
def test_non_phones_kept(text):
    assert mask_phone_numbers(text) == (text, 0)


@pytest.mark.parametrize("ip", IPS)
def test_ip_masked_in_sentence(ip):
    text = f"The server at {ip}. Done"
    assert mask_ips(text) == (f"The server at {IP_TOKEN}. Done", 1)


@pytest.mark.parametrize("text", NOT_IPS)
def test_non_ips_kept(text):
    assert mask_ips(text) == (text, 0)


def test_counts_several_matches():
    text = "a@b.com and c@d.org; 8.8.8.8 or 1.1.1.1; 283-182-3829 / (555) 123-4567"
    assert mask_emails(text)[1] == 2
    assert mask_ips(text)[1] == 2
    assert mask_phone_numbers(text)[1] == 2
