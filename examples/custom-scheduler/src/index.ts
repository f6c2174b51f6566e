import { swrr } from './swrr.js';

export { swrr, smoothSequence, type SwrrOptions } from './swrr.js';
export default swrr;
