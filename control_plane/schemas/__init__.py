"""The API schema: pydantic models shared by the server and every client.

One definition of each resource. The server validates requests and serialises responses with these; the client
(``orch.client``) parses responses into them. Importing this package must stay cheap: it pulls in pydantic only,
never SQLAlchemy or FastAPI.
"""
