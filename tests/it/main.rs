mod okta;
