//! One milter connection. To be written (issue 20).
