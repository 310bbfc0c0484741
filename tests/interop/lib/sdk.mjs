// What the MCP TypeScript SDK suites share: an in-memory OAuthClientProvider and a fetch that
// records every request the SDK makes.

import { randomBytes } from 'node:crypto';

/**
 * An in-memory OAuthClientProvider, as a CLI MCP client would implement it: it keeps what the SDK
 * hands it and records the authorization URLs it is asked to open. With `clientMetadataUrl` it
 * identifies itself by that Client ID Metadata Document instead of registering (when the server
 * supports it); `registrations` counts the client information the SDK saved from a registration.
 */
export class MemoryProvider {
  constructor(redirectUrl, { clientMetadataUrl } = {}) {
    this._redirectUrl = redirectUrl;
    if (clientMetadataUrl) this.clientMetadataUrl = clientMetadataUrl;
    this.authorizationUrls = [];
    this.states = [];
    this.registrations = 0;
    this._clientInformation = undefined;
    this._tokens = undefined;
    this._codeVerifier = undefined;
  }

  get redirectUrl() {
    return this._redirectUrl;
  }

  get clientMetadata() {
    return {
      client_name: 'Doorman interop (MCP TypeScript SDK)',
      redirect_uris: [this._redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      scope: 'mcp offline_access',
    };
  }

  state() {
    const state = randomBytes(16).toString('base64url');
    this.states.push(state);
    return state;
  }

  clientInformation() {
    return this._clientInformation;
  }

  saveClientInformation(info) {
    if (info.client_id !== this.clientMetadataUrl) this.registrations += 1;
    this._clientInformation = info;
  }

  tokens() {
    return this._tokens;
  }

  saveTokens(tokens) {
    this._tokens = tokens;
  }

  redirectToAuthorization(url) {
    this.authorizationUrls.push(new URL(url));
  }

  saveCodeVerifier(verifier) {
    this._codeVerifier = verifier;
  }

  codeVerifier() {
    if (!this._codeVerifier) throw new Error('no code verifier saved');
    return this._codeVerifier;
  }
}

/** A fetch that records "METHOD url" in `log` for every request the SDK makes. */
export function recordingFetch(log) {
  return (input, init) => {
    const url = input instanceof Request ? input.url : String(input);
    log.push(`${(init?.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase()} ${url}`);
    return fetch(input, init);
  };
}
