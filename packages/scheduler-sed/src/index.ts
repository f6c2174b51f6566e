export { sed as default, sed, sedPlan } from './sed.js';
