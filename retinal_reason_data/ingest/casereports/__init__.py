"""Case reports read as text: JATS articles, case sections, clinical context, diagnoses, figure panels."""
