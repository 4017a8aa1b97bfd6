/** mesh-cni-agent configuration from the environment and the enrollment decision. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { hasErrorCode } from '../../lib/errors.js';
import { enrollment, loadAgentConfig } from '../../cni/agent/config.js';

describe('mesh-cni-agent config', () => {
  test('defaults: Istio socket paths, state file next to the event socket, DNS capture off, probe address', () => {
    const c = loadAgentConfig({});
    assert.equal(c.cniEventAddress, '/var/run/istio-cni/pluginevent.sock');
    assert.equal(c.ztunnelUdsAddress, '/var/run/ztunnel/ztunnel.sock');
    assert.equal(c.stateFile, '/var/run/istio-cni/pods.json');
    assert.equal(c.dnsCapture, false);
    assert.equal(c.probeSnatAddress, '169.254.7.127');
    assert.equal(c.ambientNamespaces.size, 0);
  });

  test('env values are read and checked', () => {
    const c = loadAgentConfig({
      CNI_EVENT_ADDRESS: '/tmp/x/ev.sock',
      ZTUNNEL_UDS_ADDRESS: '/tmp/z.sock',
      AMBIENT_NAMESPACES: 'a, b,,',
      AMBIENT_EXCLUDED_PODS: 'a/skip',
      DNS_CAPTURE: 'true',
      HOST_PROBE_SNAT_ADDRESS: '169.254.1.1',
    });
    assert.equal(c.stateFile, '/tmp/x/pods.json');
    assert.deepEqual([...c.ambientNamespaces], ['a', 'b']);
    assert.equal(c.dnsCapture, true);
    assert.throws(
      () => loadAgentConfig({ DNS_CAPTURE: 'maybe' }),
      (e: unknown) => hasErrorCode(e, 'CNI_AGENT_BAD_CONFIG'),
    );
    assert.throws(
      () => loadAgentConfig({ HOST_PROBE_SNAT_ADDRESS: 'fd00::1' }),
      (e: unknown) => hasErrorCode(e, 'CNI_AGENT_BAD_CONFIG'),
    );
    assert.throws(
      () => loadAgentConfig({ AMBIENT_EXCLUDED_PODS: 'noslash' }),
      (e: unknown) => hasErrorCode(e, 'CNI_AGENT_BAD_CONFIG'),
    );
  });

  test('enrollment: listed namespaces or *, never kube-system, excluded pods opt out', () => {
    const listed = loadAgentConfig({ AMBIENT_NAMESPACES: 'demo', AMBIENT_EXCLUDED_PODS: 'demo/db-0' });
    assert.equal(enrollment(listed, 'demo', 'web-0').enrolled, true);
    assert.equal(enrollment(listed, 'demo', 'db-0').enrolled, false);
    assert.equal(enrollment(listed, 'other', 'web-0').enrolled, false);
    const all = loadAgentConfig({ AMBIENT_NAMESPACES: '*' });
    assert.equal(enrollment(all, 'anything', 'x').enrolled, true);
    assert.equal(enrollment(all, 'kube-system', 'coredns').enrolled, false);
    assert.equal(enrollment(loadAgentConfig({}), 'demo', 'web-0').enrolled, false);
  });
});
