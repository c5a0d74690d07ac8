"""Site-wide settings of every user's Jupyter server on the course's JupyterHub."""

c = get_config()  # noqa: F821 (provided by Jupyter when it reads this file)

# JupyterHub >= 4.1 sends "frame-ancestors 'none'", and formgrader inside JupyterLab
# (an iframe) stays blank. nbgrader's documentation gives this header: the server's
# pages may be framed by pages of the same origin. Without per-user subdomains
# (JupyterHub.enable_subdomains) every user's server shares one origin, so users must
# trust each other not to frame one another's pages; otherwise open formgrader in a tab
# of its own (Lab's menu Nbgrader > Formgrader, then the page's own address).
c.ServerApp.tornado_settings = {"headers": {"Content-Security-Policy": "frame-ancestors 'self'"}}
