export { dpdkDataplane, dpdkDataplane as default } from './plugin.js';
export { DpdkDataplane } from './dataplane.js';
export { PacketHarness, type EmittedFrame, type HarnessOptions, type HarnessPort } from './harness.js';
export { CounterMetrics } from './metrics.js';
export { DpdkErrorCodes } from './errors.js';
export { loadNative, nativeUnavailableReason, TCP_STATES } from './native.js';
export {
  optionsSchema,
  type DpdkDataplaneOptions,
  type DpdkPortOptions,
  type DpdkRouteOptions,
} from './options.js';
export { toNativeService, toNativePlan } from './snapshot.js';
