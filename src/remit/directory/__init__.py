"""The directory remit keeps: users, groups (nested), applications, sites and directory roles."""
