/** L4 authorization (AuthorizationPolicy as ztunnel enforces it): pure evaluation over WorkloadStore's policies. */
export * from './rbac.js';
