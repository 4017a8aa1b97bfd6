/**
 * Workload identity: SPIFFE IDs, keys and CSRs, certificates, the CA (signing, gRPC server and client) and the
 * certificate manager proxies use. Shared by ztunnel, waypoint and controller, hence its home in lib/.
 */

// Identities and certificates as plain records.
export {
  type Identity,
  DEFAULT_TRUST_DOMAIN,
  parseSpiffeId,
  tryParseSpiffeId,
  makeIdentity,
  formatSpiffeId,
  principalOf,
  sameIdentity,
} from './spiffe.js';
export {
  type WorkloadCertificate,
  splitPemCertificates,
  parseCertificatePem,
  uriSans,
  identityOfCertificate,
  identitiesOfCertificate,
  workloadCertificateFromChain,
  refreshAt,
  isExpired,
} from './certificate.js';
export { type KeyPairPem, type VerifiedCsr, generateKeyPair, createCsr, verifyCsr } from './csr.js';

// Signing, and the plugged-in CA material it signs with.
export { CertificateAuthority, type CertificateAuthorityOptions, type CaSigningOptions, type LocalSigningOptions } from './ca.js';
export { CA_FILES, type CaBundle, type CaBundlePem, loadCaBundle, readCaBundleFiles } from './ca-bundle.js';
export { type CaSigningKey, type CaKeyEncoding, MIN_CA_RSA_BITS, MAX_CA_RSA_BITS, importCaSigningKey } from './ca-key.js';

// The CA API: server, client and their shared conventions.
export {
  type CaRequestContext,
  type CaAuthorizer,
  type CaServiceOptions,
  type CaServerTransport,
  type StartCaServerOptions,
  type RunningCaServer,
  allowRequestedIdentity,
  createCaServiceHandlers,
  addCaService,
  caServingTransport,
  startCaServer,
} from './ca-server.js';
export { type TokenSource, type CaClientTransport, type CaClientOptions, CaClient, tokenFromFile } from './ca-client.js';
export { IMPERSONATED_IDENTITY_KEY, AUTHORIZATION_HEADER, CLUSTER_ID_HEADER, grpcStatusOf, caErrorFromGrpc } from './ca-protocol.js';

// What proxies use.
export {
  type CertificateProvider,
  type ManagerClock,
  type BackoffPolicy,
  type CertificateDump,
  type CertificatesDump,
  type CertificateManagerOptions,
  type CertificateListener,
  CertificatePriority,
  CertificateManager,
  DEFAULT_CERT_BACKOFF,
  backoffDelayMs,
  systemClock,
} from './cert-manager.js';
export { LocalCaProvider, type LocalCaProviderOptions } from './local-ca-provider.js';

// Errors and budgets.
export { IdentityError, IdentityErrorCode, CaMaterialError, CaError, CaErrorCode, CaRefusedError } from './errors.js';
export * from './defaults.js';
