/**
 * A protoc plugin, run by buf (buf.gen.yaml, strategy `all`): writes
 * `openapi.json`, the OpenAPI 3.1 document of the REST API (scripts/openapi.ts),
 * from the request's descriptors, which carry the proto comments.
 * It imports the gateway's rule table, which reads the generated
 * google/api/annotations_pb.js: buf runs plugins before `clean` empties the output.
 * buf runs it once per input of buf.gen.yaml: an input with no service to document (the
 * google.rpc error protos) writes nothing, so it cannot replace the document of `proto/`.
 */
import { readFileSync } from 'node:fs';
import { create, createFileRegistry, fromBinary, toBinary } from '@bufbuild/protobuf';
import {
  CodeGeneratorRequestSchema,
  CodeGeneratorResponse_Feature,
  CodeGeneratorResponseSchema,
  FileDescriptorSetSchema,
} from '@bufbuild/protobuf/wkt';
import { openApiJson } from './openapi.ts';

const request = fromBinary(CodeGeneratorRequestSchema, readFileSync(0));
const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: request.protoFile }));
const documented = request.protoFile.some(
  (file) => request.fileToGenerate.includes(file.name) && file.service.length > 0,
);
const response = create(CodeGeneratorResponseSchema, {
  supportedFeatures: BigInt(CodeGeneratorResponse_Feature.PROTO3_OPTIONAL),
  file: documented ? [{ name: 'openapi.json', content: openApiJson(registry) }] : [],
});
process.stdout.write(toBinary(CodeGeneratorResponseSchema, response));
