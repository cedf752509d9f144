"""Published case reports: JATS parsing helpers, figure panels, clinical context, leakage, teacher calls."""
