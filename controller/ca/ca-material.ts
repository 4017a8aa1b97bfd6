/**
 * Where the controller's CA key comes from, in istiod's order: Istio's plugged-in CA files (CACERTS_DIR,
 * the `cacerts` secret mounted as files), else a self-signed root kept in the Secret `istio-ca-secret` of the
 * system namespace — created by whichever replica comes first (create is atomic; a 409 means another replica
 * won, so read and use its root) so that every replica signs with the same root.
 */
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { CertificateAuthority } from '../../lib/identity/ca.js';

export const SELF_SIGNED_CA_SECRET = 'istio-ca-secret';

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const unb64 = (s: string | undefined): string | undefined => (s === undefined ? undefined : Buffer.from(s, 'base64').toString('utf8'));

function statusOf(err: unknown): number | undefined {
  return (err as { code?: number })?.code;
}

export async function loadCertificateAuthority(
  kc: KubeConfig,
  opts: { readonly cacertsDir: string | undefined; readonly systemNamespace: string; readonly trustDomain: string },
  log: Logger,
): Promise<CertificateAuthority> {
  if (opts.cacertsDir) {
    // The same loader and checks as ztunnel's FAKE_CA_DIR: a bad directory fails the start with a CaMaterialError.
    const ca = await CertificateAuthority.fromDirectory({ trustDomain: opts.trustDomain, dir: opts.cacertsDir });
    log.info({ dir: opts.cacertsDir, key: ca.signingKeyDescription }, 'using the plugged-in CA');
    return ca;
  }
  const api = kc.makeApiClient(CoreV1Api);
  const namespace = opts.systemNamespace;
  const fromSecret = async (): Promise<CertificateAuthority | undefined> => {
    try {
      const secret = await api.readNamespacedSecret({ name: SELF_SIGNED_CA_SECRET, namespace });
      const cert = unb64(secret.data?.['ca-cert.pem']);
      const key = unb64(secret.data?.['ca-key.pem']);
      if (!cert || !key) throw new Error(`secret ${namespace}/${SELF_SIGNED_CA_SECRET} lacks ca-cert.pem or ca-key.pem`);
      return await CertificateAuthority.fromPem({
        trustDomain: opts.trustDomain,
        caCertPem: cert,
        caKeyPem: key,
        rootCertPem: unb64(secret.data?.['root-cert.pem']) ?? cert,
        where: (file) => `secret ${namespace}/${SELF_SIGNED_CA_SECRET} key ${file}`,
      });
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw err;
    }
  };
  const existing = await fromSecret();
  if (existing) {
    log.info({ secret: `${namespace}/${SELF_SIGNED_CA_SECRET}` }, 'using the self-signed root from its secret');
    return existing;
  }
  const { ca, rootPem, keyPem } = await CertificateAuthority.createSelfSignedWithPem({ trustDomain: opts.trustDomain });
  try {
    await api.createNamespacedSecret({
      namespace,
      body: {
        metadata: { name: SELF_SIGNED_CA_SECRET, namespace },
        type: 'istio.io/ca-root',
        data: { 'ca-cert.pem': b64(rootPem), 'ca-key.pem': b64(keyPem), 'root-cert.pem': b64(rootPem), 'cert-chain.pem': '' },
      },
    });
    log.info({ secret: `${namespace}/${SELF_SIGNED_CA_SECRET}` }, 'created a self-signed root');
    return ca;
  } catch (err) {
    if (statusOf(err) !== 409) throw err;
    const winner = await fromSecret();
    if (!winner) throw new Error(`secret ${namespace}/${SELF_SIGNED_CA_SECRET} exists but cannot be read`);
    return winner;
  }
}
