"""cs336-common: model and tokenizer primitives shared by the cs336 packages."""
