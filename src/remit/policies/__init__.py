"""Assignment policies: who may request a package, who approves, how long access lasts."""
