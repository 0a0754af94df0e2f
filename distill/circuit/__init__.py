"""Circuit discovery: traces -> variables -> components and what they read -> tables."""
