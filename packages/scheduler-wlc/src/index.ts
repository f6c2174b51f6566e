export { wlc as default, wlc, wlcPlan } from './wlc.js';
