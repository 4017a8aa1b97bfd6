/**
 * The mesh-cni plugin's configuration from the environment: the CNI protocol's parameters, which the container
 * runtime passes as environment variables (CNI spec 1.0.0, "Parameters"). Everything else the plugin knows comes
 * on stdin in the network configuration. Read once at start; nothing else in the plugin reads process.env.
 * Dependency-free, like the rest of the plugin (it is started once per pod).
 */

export const CNI_VARIABLES = ['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_ARGS', 'CNI_PATH'] as const;
export type CniVariable = (typeof CNI_VARIABLES)[number];

/** Each CNI_* variable as set, "" when unset (the spec gives unset and empty the same meaning). */
export type CniEnv = Readonly<Record<CniVariable, string>>;

export function readCniEnv(env: Readonly<Record<string, string | undefined>> = process.env): CniEnv {
  return Object.freeze(Object.fromEntries(CNI_VARIABLES.map((name) => [name, env[name] ?? ''])) as Record<CniVariable, string>);
}
