/**
 * gRPC server reflection (grpc.reflection.v1 and v1alpha,
 * https://github.com/grpc/grpc/blob/master/doc/server-reflection.md), so that grpcurl, Postman or
 * any reflection client lists and calls a Tally server with no proto files. Served by
 * @grpc/reflection, which reads a package definition only for its `fileDescriptorProtos`: here
 * those are the serialized FileDescriptorProtos that protobuf-es embeds in the generated code
 * (each service's file and every file it imports), so no proto is parsed at run time.
 */

import type { DescFile, DescService } from '@bufbuild/protobuf';
import { toBinary } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import type * as grpc from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { file_google_rpc_error_details } from '../../gen/google/rpc/error_details_pb.js';
import { file_google_rpc_status } from '../../gen/google/rpc/status_pb.js';

/** The full names of the reflection services (for logs and tests). */
export const REFLECTION_SERVICES = [
  'grpc.reflection.v1.ServerReflection',
  'grpc.reflection.v1alpha.ServerReflection',
] as const;

/** The serialized descriptors of `files` and of everything they import, each file once. */
function fileDescriptorProtos(files: readonly DescFile[]): Buffer[] {
  const seen = new Map<string, Buffer>();
  const visit = (file: DescFile) => {
    if (seen.has(file.proto.name)) return;
    seen.set(file.proto.name, Buffer.from(toBinary(FileDescriptorProtoSchema, file.proto)));
    for (const dependency of file.dependencies) visit(dependency);
  };
  for (const file of files) visit(file);
  return [...seen.values()];
}

/**
 * The grpc-js definitions and handlers of both reflection services, describing `services` (only
 * them: other services of their files are not listed) and the google.rpc error details every
 * error carries, so that a reflection client (grpcurl) prints those details as JSON.
 */
export function reflectionServices(
  services: readonly DescService[],
): { definition: grpc.ServiceDefinition; handlers: grpc.UntypedServiceImplementation }[] {
  const packageDefinition = {
    descriptors: {
      fileDescriptorProtos: fileDescriptorProtos([
        ...services.map((s) => s.file),
        file_google_rpc_status,
        file_google_rpc_error_details,
      ]),
    },
  };
  const reflection = new ReflectionService(packageDefinition as never, {
    services: services.map((s) => s.typeName),
  });
  const added: { definition: grpc.ServiceDefinition; handlers: grpc.UntypedServiceImplementation }[] = [];
  reflection.addToServer({
    addService: (definition, handlers) => {
      added.push({ definition, handlers });
    },
  });
  return added;
}
