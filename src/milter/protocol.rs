//! The milter packets (sans-IO). To be written (issue 20).
