/**
 * Label selection as Kubernetes and Istio use it: a selector (matchLabels) selects an object when every one of
 * its labels is present with the same value. An empty selector selects everything; whether an absent selector
 * selects nothing (Service) or means "not a selector policy" (AuthorizationPolicy) is the caller's decision.
 */
import type { Labels } from '../kube/records.js';

export function selects(selector: Labels, labels: Labels): boolean {
  for (const k in selector) {
    if (labels[k] !== selector[k]) return false;
  }
  return true;
}
