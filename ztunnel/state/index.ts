/**
 * ztunnel's state, in the order data meets it: the domain records (model), the address helpers every index
 * keys on (ip), and the indexed store the proxy looks things up in (store). Edges that fill it: local config
 * (ztunnel/config/local-config.ts) and WDS.
 */
export * from './model.js';
export * from '../../lib/net/ip.js';
export * from './store.js';
