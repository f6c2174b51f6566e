import type { AnyPlugin } from '@fulcrum/kernel';
import socket from '@fulcrum/dataplane-socket';
import rr from '@fulcrum/scheduler-rr';
import wrr from '@fulcrum/scheduler-wrr';
import lc from '@fulcrum/scheduler-lc';
import wlc from '@fulcrum/scheduler-wlc';
import sed from '@fulcrum/scheduler-sed';
import nq from '@fulcrum/scheduler-nq';
import sh from '@fulcrum/scheduler-sh';
import mh from '@fulcrum/scheduler-mh';
import passive from '@fulcrum/healthcheck-passive';
import http from '@fulcrum/healthcheck-http';
import tcp from '@fulcrum/healthcheck-tcp';
import script from '@fulcrum/healthcheck-script';
import proxyProtocol from '@fulcrum/proxy-protocol';
import toa from '@fulcrum/toa';

/**
 * The plugins the daemon ships: the kernel falls back to them when a config names one that
 * is not installed, so the single binary runs with no node_modules; an installed package
 * of the same name takes precedence. The DPDK dataplane is not among them: it is a native
 * addon, loaded by name from the system (see its README).
 */
export const builtinPlugins: readonly AnyPlugin[] = [
  socket,
  rr,
  wrr,
  lc,
  wlc,
  sed,
  nq,
  sh,
  mh,
  passive,
  http,
  tcp,
  script,
  proxyProtocol,
  toa,
] as AnyPlugin[];
