/**
 * Every word the web pages show, in one place, so a translator adds a
 * language by adding one object. English is always there; a request gets the
 * first language of its Accept-Language that has a translation.
 */
export interface Strings {
  lang: string;
  title: string;
  registerHeading: string;
  registerIntro: string;
  nickname: string;
  registerButton: string;
  registeredHeading: string;
  registeredText: string;
  continueLink: string;
  loggedOutHeading: string;
  loggedOutText: string;
  logoutButton: string;
  claimHeading: string;
  claimDone: string;
  claimRefused: string;
  claimNeedsDevice: string;
  errorHeading: string;
  tooMany: string;
  badForm: string;
  badRedirect: string;
  unavailable: string;
  certificateRefused: string;
  forbidden: string;
  notFound: string;
}

const en: Strings = {
  lang: "en",
  title: "School server",
  registerHeading: "Register this device",
  registerIntro: "Register once and the school's web services will know you, with no password.",
  nickname: "Your name",
  registerButton: "Register",
  registeredHeading: "You are registered",
  registeredText: "This device is registered as",
  continueLink: "Continue",
  loggedOutHeading: "Logged out",
  loggedOutText: "This device is no longer logged in. Register again to come back.",
  logoutButton: "Log out",
  claimHeading: "School server administrator",
  claimDone: "You are now an administrator of this school server.",
  claimRefused: "This link is not valid any more. Ask for a new one (sugar-server admin claim-url).",
  claimNeedsDevice: "Register this device first, then open the link again.",
  errorHeading: "That did not work",
  tooMany: "Too many attempts from this address. Wait a minute and try again.",
  badForm: "The form had expired or came from another site. Please try again.",
  badRedirect: "That link leads outside the school's services.",
  unavailable: "The school server is busy. Try again in a moment.",
  certificateRefused: "This browser's client certificate was not accepted: it has expired or is not from this school district. Remove it from the browser, or ask for a new one.",
  forbidden: "This page is for the school server's administrators.",
  notFound: "There is no such page.",
};

const es: Strings = {
  lang: "es",
  title: "Servidor escolar",
  registerHeading: "Registrar este dispositivo",
  registerIntro: "Registrate una vez y los servicios web de la escuela te reconocerán, sin contraseña.",
  nickname: "Tu nombre",
  registerButton: "Registrar",
  registeredHeading: "Estás registrado",
  registeredText: "Este dispositivo está registrado como",
  continueLink: "Continuar",
  loggedOutHeading: "Sesión cerrada",
  loggedOutText: "Este dispositivo ya no tiene la sesión abierta. Registrate de nuevo para volver.",
  logoutButton: "Cerrar sesión",
  claimHeading: "Administración del servidor escolar",
  claimDone: "Ahora administrás este servidor escolar.",
  claimRefused: "Este enlace ya no es válido. Pedí uno nuevo (sugar-server admin claim-url).",
  claimNeedsDevice: "Primero registrá este dispositivo y después abrí el enlace otra vez.",
  errorHeading: "No funcionó",
  tooMany: "Demasiados intentos desde esta dirección. Esperá un minuto e intentá de nuevo.",
  badForm: "El formulario venció o vino de otro sitio. Intentá de nuevo.",
  badRedirect: "Ese enlace lleva fuera de los servicios de la escuela.",
  unavailable: "El servidor escolar está ocupado. Intentá de nuevo en un momento.",
  certificateRefused: "El certificado de cliente de este navegador no fue aceptado: venció o no es de este distrito escolar. Quitalo del navegador o pedí uno nuevo.",
  forbidden: "Esta página es para quienes administran el servidor escolar.",
  notFound: "No existe esa página.",
};

export const LANGUAGES: Readonly<Record<string, Strings>> = { en, es };

/** The strings for an Accept-Language header: its languages by weight, the first one translated, else English. */
export function stringsFor(acceptLanguage: string | undefined): Strings {
  const wanted = (acceptLanguage ?? "")
    .slice(0, 256)
    .split(",")
    .map((part, i) => {
      const [tag, ...params] = part.trim().split(";");
      const q = Number(/^q=([0-9.]+)$/.exec(params.map((p) => p.trim()).find((p) => p.startsWith("q=")) ?? "")?.[1] ?? "1");
      return { lang: (tag ?? "").toLowerCase().split("-")[0]!, q: Number.isFinite(q) ? q : 0, i };
    })
    .filter((w) => w.lang && w.q > 0)
    .sort((a, b) => b.q - a.q || a.i - b.i);
  for (const w of wanted) if (Object.hasOwn(LANGUAGES, w.lang)) return LANGUAGES[w.lang]!;
  return en;
}
