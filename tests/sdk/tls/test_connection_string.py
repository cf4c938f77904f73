"""The official Python SDK, sync and async, built from a connection string against the
local server over HTTPS: create, issue, revoke and delete."""

import asyncio

from azure.communication.identity import CommunicationIdentityClient, CommunicationTokenScope
from azure.communication.identity.aio import CommunicationIdentityClient as AsyncClient
from azure.core.exceptions import ResourceNotFoundError


def test_the_sync_client_works_from_a_connection_string(connection_string):
    client = CommunicationIdentityClient.from_connection_string(connection_string)
    user, token = client.create_user_and_token([CommunicationTokenScope.CHAT])
    assert user.properties["id"].startswith("8:acs:")
    assert token.token
    again = client.get_token(user, [CommunicationTokenScope.VOIP])
    assert again.token and again.token != token.token
    client.revoke_tokens(user)
    client.delete_user(user)
    try:
        client.get_token(user, [CommunicationTokenScope.CHAT])
        raise AssertionError("a deleted user got a token")
    except ResourceNotFoundError:
        pass


def test_the_async_client_works_from_a_connection_string(connection_string):
    async def run():
        async with AsyncClient.from_connection_string(connection_string) as client:
            user, token = await client.create_user_and_token([CommunicationTokenScope.CHAT])
            assert token.token
            again = await client.get_token(user, [CommunicationTokenScope.CHAT])
            assert again.token
            await client.revoke_tokens(user)
            await client.delete_user(user)
            return user

    assert asyncio.run(run()).properties["id"].startswith("8:acs:")
