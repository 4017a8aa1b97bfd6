/**
 * The local mesh's configuration from the environment; nothing else in localmesh/ reads process.env.
 *
 *   LOCAL_MESH_NAME  prefix of everything the local mesh creates (namespaces, links, processes), default
 *                    localmesh; a second local mesh on the same machine needs another name
 */
import { type Env, EnvReader } from '../lib/config/env.js';

export interface LocalMeshConfig {
  readonly name: string;
}

export function loadLocalMeshConfig(vars: Env = process.env): LocalMeshConfig {
  const env = new EnvReader(vars);
  return Object.freeze({ name: env.string('LOCAL_MESH_NAME', 'localmesh') });
}
