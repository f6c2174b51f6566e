/**
 * Configuration as written (YAML, JSON or an object given to the API), before validation.
 * Durations are a number of seconds or a string with a unit; endpoints are strings.
 */
export type PluginRef = string | { name: string; options?: Record<string, unknown> };
export type DurationInput = number | string;

export interface RealServerInput {
  address: string;
  weight?: number;
  drain?: boolean;
}

export interface ServiceInput {
  name: string;
  protocol?: 'tcp' | 'udp';
  listen: string;
  scheduler?: PluginRef;
  persistence?: { timeout: DurationInput };
  passthrough?: PluginRef;
  synproxy?: boolean;
  healthChecks?: PluginRef[];
  onFailure?: 'inhibit' | 'drain' | 'remove';
  drain?: { idleClose?: DurationInput; deadline?: DurationInput };
  maxConnections?: number;
  quorum?: number;
  hysteresis?: number;
  sorryServer?: string;
  notify?: {
    up?: string | string[];
    down?: string | string[];
    quorumUp?: string | string[];
    quorumDown?: string | string[];
  };
  localAddresses?: string[];
  realServers?: RealServerInput[];
}

export interface ConfigInput {
  $schema?: string;
  dataplane?: PluginRef;
  admin?: { listen: string; tokenFile?: string };
  plugins?: string[];
  services?: ServiceInput[];
}
