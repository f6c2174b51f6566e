export { requires, type Requirement, type RequirementResult } from './requires.js';
export { ManualClock } from '@fulcrum/kernel';
