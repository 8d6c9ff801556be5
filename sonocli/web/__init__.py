"""The concentrator's web interface, its JSON API and the FTP server of the logs (guide chapter 4, 4.6, 7.3).

A face beside ``daemon/``: it imports only the engine, the model and errors (tests/unit/test_dependency_rule.py),
and serve-daemon starts it when WEB_ENABLE/FTPD_ENABLE is 1 (sonocli.web.server.services). Nothing here is
imported until then: Starlette, uvicorn and pyftpdlib are the optional ``web`` extra.
"""
