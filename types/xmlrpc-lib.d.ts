// The xmlrpc package is used only to (de)serialise, on sugar-server's own
// HTTP server (no limits, crashes on a throwing handler): these are its two library files.
declare module "xmlrpc/lib/deserializer.js" {
  export default class Deserializer {
    constructor(encoding?: string);
    deserializeMethodCall(stream: NodeJS.ReadableStream, callback: (error: Error | null, method?: string, params?: unknown[]) => void): void;
    deserializeMethodResponse(stream: NodeJS.ReadableStream, callback: (error: Error | null, value?: unknown) => void): void;
  }
}
declare module "xmlrpc/lib/serializer.js" {
  const serializer: {
    serializeMethodCall(method: string, params: unknown[], encoding?: string): string;
    serializeMethodResponse(result: unknown): string;
    serializeFault(fault: { faultCode: number; faultString: string }): string;
  };
  export default serializer;
}
