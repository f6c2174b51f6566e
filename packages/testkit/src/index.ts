export { requires, type Requirement, type RequirementResult } from './requires.js';
export { ManualClock } from '@fulcrum/kernel';
export { PlanSimulator, syntheticAddress, type SimulatedConnection } from './simulator.js';
export { makeView, type ServerInput } from './views.js';
export { createMemoryDataplane, type MemoryService } from './memory-dataplane.js';
export {
  schedulerCases,
  healthCheckCases,
  passthroughCases,
  dataplaneCases,
  standardViews,
  testContext,
  validOptions,
  type CaseOptions,
  type ConformanceCase,
} from './conformance.js';
export {
  compilePlan,
  instantiate,
  leastConnectionsCases,
  prng,
  randomInt,
  type LeastConnectionsOracle,
} from './scheduler.js';
export { exhaustDescriptors, type DescriptorSqueeze } from './descriptors.js';
export { watchCheck, listening, closed, type CheckWatch } from './health.js';
