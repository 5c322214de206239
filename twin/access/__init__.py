"""Who may see what: principals, tokens and scopes, the audit trail, data classification and
the suppression of small people counts."""
