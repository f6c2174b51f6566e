export { passive as default, passive, verdictOf, type PassiveOptions } from './passive.js';
export {
  DestCheck,
  type DestCheckConfig,
  type DestCheckState,
  type DestCheckTransition,
} from './dest-check.js';
