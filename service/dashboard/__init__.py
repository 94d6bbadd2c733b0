"""The live dashboard's files (index.html, dashboard.js, dashboard.css), served by
service/api/dashboard.py. Plain HTML, CSS and JavaScript: no build step, nothing from a CDN."""
