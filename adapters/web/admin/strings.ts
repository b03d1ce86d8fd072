/**
 * Every word the admin console shows, English and Spanish, like
 * adapters/web/strings.ts: a translator adds a language by adding one object.
 */
import { stringsFor } from "../strings.js";

export interface AdminStrings {
  lang: string;
  console: string;
  nav: { overview: string; users: string; leases: string; backups: string; metrics: string };
  overview: string;
  users: string;
  machines: string;
  admins: string;
  leases: string;
  expiring: (days: number) => string;
  stolen: string;
  backupsToday: string;
  backupsRunning: string;
  disk: string;
  inodes: string;
  free: string;
  keyring: string;
  keyringOk: string;
  keyringFailed: string;
  keyringNone: string;
  lastSign: string;
  renewer: string;
  renewerOff: string;
  renewerLeft: (n: string) => string;
  renewerNote: (days: number, renewed: string, failed: string) => string;
  fromDistrict: (n: string) => string;
  districtNotSynced: string;
  bus: string;
  busEmbedded: string;
  connected: string;
  disconnected: string;
  version: string;
  uptime: string;
  unavailable: string;
  live: string;
  liveIntro: string;
  liveOff: string;
  pendingClaims: string;
  noClaims: string;
  claimText: (newNick: string, oldNick: string, sn: string) => string;
  approve: string;
  reject: string;
  search: string;
  searchHint: string;
  nickname: string;
  uid: string;
  sn: string;
  registered: string;
  admin: string;
  yes: string;
  no: string;
  noMatch: string;
  more: (shown: number, total: number) => string;
  user: string;
  kind: string;
  lastBackup: string;
  size: string;
  snapshots: string;
  never: string;
  makeAdmin: string;
  dropAdmin: string;
  remove: string;
  removeConfirm: string;
  lookUp: string;
  leaseFor: (sn: string) => string;
  noLease: string;
  expiry: string;
  lastActivation: string;
  answer: string;
  onStolenList: string;
  markStolen: string;
  markNotStolen: string;
  stolenList: string;
  source: string;
  sourceLocal: string;
  sourceDistrict: (by: string, at: string) => string;
  onDistrictList: (by: string, at: string) => string;
  stolenShown: (shown: string, total: string, after: string) => string;
  firstPage: string;
  nextPage: string;
  upload: string;
  uploadHint: (mb: number) => string;
  uploadButton: string;
  imported: string;
  replaced: string;
  refused: string;
  importResult: string;
  backups: string;
  busy: string;
  accepted: string;
  slots: string;
  files: string;
  done: string;
  notAdmin: string;
  badForm: string;
  tooLarge: (mb: number) => string;
  notLeaseFile: string;
  errorHeading: string;
  notFound: string;
  notSerial: string;
}

const en: AdminStrings = {
  lang: "en",
  console: "School server",
  nav: { overview: "Overview", users: "Users", leases: "Leases and stolen", backups: "Backups", metrics: "Metrics" },
  overview: "Overview",
  users: "Users",
  machines: "Machines",
  admins: "Administrators",
  leases: "Leases",
  expiring: (d) => `expiring within ${d} days`,
  stolen: "Stolen",
  backupsToday: "Backups today",
  backupsRunning: "Backups running now",
  disk: "Disk",
  inodes: "Inodes",
  free: "free",
  keyring: "Keyring",
  keyringOk: "answering",
  keyringFailed: "failing",
  keyringNone: "no signing yet",
  lastSign: "last signing",
  renewer: "Lease renewer",
  renewerOff: "off",
  renewerLeft: (n) => `${n} to renew`,
  renewerNote: (d, r, f) => `${d} days ahead; renewed ${r}, failed ${f}`,
  fromDistrict: (n) => `${n} from the district`,
  districtNotSynced: "the district not reached yet",
  bus: "Bus",
  busEmbedded: "embedded",
  connected: "connected",
  disconnected: "not connected",
  version: "Version",
  uptime: "Up for",
  unavailable: "not answering",
  live: "Live",
  liveIntro: "What happens now: registrations, logins, activations, backups, re-flash claims, keyring errors, lease renewals.",
  liveOff: "The live feed needs JavaScript; reload the page to see the latest counts.",
  pendingClaims: "Re-flashed laptops waiting for approval",
  noClaims: "No re-flash claims are waiting.",
  claimText: (n, o, sn) => `${n} (new key) says it is ${o}'s laptop ${sn}`,
  approve: "Approve",
  reject: "Reject",
  search: "Search",
  searchHint: "Nickname, serial number or uid",
  nickname: "Nickname",
  uid: "uid",
  sn: "Serial number",
  registered: "Registered",
  admin: "Admin",
  yes: "yes",
  no: "no",
  noMatch: "Nobody matches.",
  more: (s, t) => `Showing ${s} of ${t}: narrow the search.`,
  user: "User",
  kind: "Kind",
  lastBackup: "Last backup",
  size: "Size",
  snapshots: "Snapshots",
  never: "never",
  makeAdmin: "Make administrator",
  dropAdmin: "Remove administrator",
  remove: "Remove this user",
  removeConfirm: "Its backups stay on the server.",
  lookUp: "Look up",
  leaseFor: (sn) => `Lease of ${sn}`,
  noLease: "No lease stored.",
  expiry: "Expires",
  lastActivation: "Last activation",
  answer: "answer",
  onStolenList: "On the stolen list: port 191 answers STOLEN.",
  markStolen: "Mark stolen",
  markNotStolen: "Mark not stolen",
  stolenList: "Stolen list",
  source: "Source",
  sourceLocal: "this school",
  sourceDistrict: (by, at) => `district (marked by ${by}, ${at})`,
  onDistrictList: (by, at) => `On the district's stolen list (marked by ${by}, ${at}): every school of the district answers STOLEN. Only the district can clear it: sugar-server stolen remove SN --district.`,
  stolenShown: (s, t, after) => `${s} of ${t} stolen serial numbers${after ? `, after ${after}` : ""}; look one up above.`,
  firstPage: "First page",
  nextPage: "Next page",
  upload: "Import a lease file",
  uploadHint: (mb) => `act01 lines or compact JSON, as OLPC's tools write them (a USB stick's leases.sig), up to ${mb} MB.`,
  uploadButton: "Import",
  imported: "imported",
  replaced: "replaced",
  refused: "refused",
  importResult: "Import",
  backups: "Backups",
  busy: "busy",
  accepted: "accepted",
  slots: "slots",
  files: "files",
  done: "Done.",
  notAdmin: "Only an administrator of this school server may do that.",
  badForm: "The form had expired or came from another site. Please try again.",
  tooLarge: (mb) => `That file is larger than ${mb} MB: split it, or use sugar-server leases import.`,
  notLeaseFile: "That is not a lease file.",
  errorHeading: "That did not work",
  notFound: "Not found.",
  notSerial: "not a serial number (3 letters and 8 hex digits, e.g. SHF706002A7); the list from its first page.",
};

const es: AdminStrings = {
  lang: "es",
  console: "Servidor escolar",
  nav: { overview: "Resumen", users: "Usuarios", leases: "Licencias y robados", backups: "Respaldos", metrics: "Métricas" },
  overview: "Resumen",
  users: "Usuarios",
  machines: "Máquinas",
  admins: "Administradores",
  leases: "Licencias",
  expiring: (d) => `vencen en ${d} días o menos`,
  stolen: "Robadas",
  backupsToday: "Respaldos de hoy",
  backupsRunning: "Respaldos en curso",
  disk: "Disco",
  inodes: "Inodos",
  free: "libre",
  keyring: "Llavero",
  keyringOk: "responde",
  keyringFailed: "falla",
  keyringNone: "todavía no firmó",
  lastSign: "última firma",
  renewer: "Renovación de licencias",
  renewerOff: "apagada",
  renewerLeft: (n) => `${n} por renovar`,
  renewerNote: (d, r, f) => `${d} días de anticipación; renovadas ${r}, fallidas ${f}`,
  fromDistrict: (n) => `${n} del distrito`,
  districtNotSynced: "todavía sin contacto con el distrito",
  bus: "Bus",
  busEmbedded: "integrado",
  connected: "conectado",
  disconnected: "sin conexión",
  version: "Versión",
  uptime: "Funcionando desde hace",
  unavailable: "no responde",
  live: "En vivo",
  liveIntro: "Lo que pasa ahora: registros, ingresos, activaciones, respaldos, reinstalaciones, errores del llavero, renovaciones de licencias.",
  liveOff: "Lo en vivo necesita JavaScript; recargá la página para ver los últimos números.",
  pendingClaims: "Laptops reinstaladas que esperan aprobación",
  noClaims: "No hay reinstalaciones esperando.",
  claimText: (n, o, sn) => `${n} (clave nueva) dice ser la laptop ${sn} de ${o}`,
  approve: "Aprobar",
  reject: "Rechazar",
  search: "Buscar",
  searchHint: "Nombre, número de serie o uid",
  nickname: "Nombre",
  uid: "uid",
  sn: "Número de serie",
  registered: "Registrado",
  admin: "Admin",
  yes: "sí",
  no: "no",
  noMatch: "Nadie coincide.",
  more: (s, t) => `Se muestran ${s} de ${t}: afiná la búsqueda.`,
  user: "Usuario",
  kind: "Tipo",
  lastBackup: "Último respaldo",
  size: "Tamaño",
  snapshots: "Copias",
  never: "nunca",
  makeAdmin: "Hacer administrador",
  dropAdmin: "Quitar administrador",
  remove: "Quitar este usuario",
  removeConfirm: "Sus respaldos quedan en el servidor.",
  lookUp: "Buscar",
  leaseFor: (sn) => `Licencia de ${sn}`,
  noLease: "No hay licencia guardada.",
  expiry: "Vence",
  lastActivation: "Última activación",
  answer: "respuesta",
  onStolenList: "En la lista de robadas: el puerto 191 responde STOLEN.",
  markStolen: "Marcar robada",
  markNotStolen: "Marcar no robada",
  stolenList: "Lista de robadas",
  source: "Origen",
  sourceLocal: "esta escuela",
  sourceDistrict: (by, at) => `distrito (marcada por ${by}, ${at})`,
  onDistrictList: (by, at) => `En la lista de robadas del distrito (marcada por ${by}, ${at}): todas las escuelas del distrito responden STOLEN. Solo el distrito puede quitarla: sugar-server stolen remove SN --district.`,
  stolenShown: (s, t, after) => `${s} de ${t} números de serie robados${after ? `, después de ${after}` : ""}; buscá uno arriba.`,
  firstPage: "Primera página",
  nextPage: "Página siguiente",
  upload: "Importar un archivo de licencias",
  uploadHint: (mb) => `Líneas act01 o JSON compacto, como los escriben las herramientas de OLPC (el leases.sig de un USB), hasta ${mb} MB.`,
  uploadButton: "Importar",
  imported: "importadas",
  replaced: "reemplazadas",
  refused: "rechazadas",
  importResult: "Importación",
  backups: "Respaldos",
  busy: "ocupado",
  accepted: "aceptado",
  slots: "lugares",
  files: "archivos",
  done: "Listo.",
  notAdmin: "Solo un administrador de este servidor escolar puede hacer eso.",
  badForm: "El formulario venció o vino de otro sitio. Intentá de nuevo.",
  tooLarge: (mb) => `Ese archivo pesa más de ${mb} MB: dividilo, o usá sugar-server leases import.`,
  notLeaseFile: "Eso no es un archivo de licencias.",
  errorHeading: "No funcionó",
  notFound: "No se encontró.",
  notSerial: "no es un número de serie (3 letras y 8 dígitos hexadecimales, p. ej. SHF706002A7); la lista desde su primera página.",
};

const ADMIN: Readonly<Record<string, AdminStrings>> = { en, es };

/** The console's strings for an Accept-Language header: the same choice the other web pages make. */
export function adminStringsFor(acceptLanguage: string | undefined): AdminStrings {
  return ADMIN[stringsFor(acceptLanguage).lang] ?? en;
}
