//! Rules + catalogs + IdP read → desired state. Pure.
