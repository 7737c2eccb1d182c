//! The text table and the JSON document of findings.md.
