"""Ground truth: tracr's suite of programs, and scoring a distilled program against its source."""
