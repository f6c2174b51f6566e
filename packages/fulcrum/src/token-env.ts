/** The environment variable holding the admin API's bearer token (daemon and `fulcrum adm`). */
export const TOKEN_ENV = 'FULCRUM_ADMIN_TOKEN';
