/**
 * memosd-client: a TypeScript client for the memosd memory daemon (protocol v1).
 */

export { Client, type AgentClientOptions } from "./client/client";
export { AdminClient } from "./client/admin";
export type { ClientOptions } from "./client/base";
export type { CurveKeys } from "./transport/connection";
export { defaultEndpoint, defaultAdminEndpoint } from "./transport/endpoints";
export { PROTOCOL_VERSION } from "./protocol/codec";
export { vectorToBytes, bytesToVector } from "./protocol/vectors";
export * from "./protocol/errors";
export * from "./protocol/types";
