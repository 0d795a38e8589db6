"""Weight-sharing supernets: trained once, specialised per target."""
