"""The admin panel (/hub/admin): every user's server, at a glance, with start and stop.

Admins only. `control.admin.routes.add_admin_routes(app)` registers it on the
hub app. The listing is computed from what the process already holds (the
user directory, the pod watch's cache, the activity view) plus one cached
metrics.k8s.io list, so a page costs the same with 50 or 50,000 users and
no Kubernetes call is made per row. Nothing here renders HTML (that is
control.pages.admin) and nothing stops or starts a pod except through the
spawner. Kept import-free so control.pages can use its plain data types.
"""
