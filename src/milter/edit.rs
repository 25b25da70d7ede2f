//! What a milter's modifications do to the stored message and the
//! envelope. To be written (issue 20).
