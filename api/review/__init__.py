"""The inspectors' review page: templates, static files, strings in Japanese and English."""
