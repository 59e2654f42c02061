/* webgpu-abi.h — gpux's own declarations of the part of the WebGPU C API (webgpu.h) that the
 * WebGPU backend uses, and the table of functions resolved from the library at run time.
 *
 * Written from the published ABI of webgpu-headers v1 as Dawn implements it in the library gpux
 * installs (npm bun-webgpu-linux-x64@0.1.7, Dawn built in 2025): struct layouts and enum values
 * below were checked against that library — WGPUAdapterInfo is 96 bytes, WGPULimits 152 bytes
 * ending at maxImmediateSize, and WGPUInstanceDescriptor still carries WGPUInstanceCapabilities.
 * WGPUFeatureName in that library numbers the standard features in their older order, from
 * DepthClipControl = 1 (TimestampQuery = 3, ShaderF16 = 0x0A, Subgroups = 0x11,
 * CoreFeaturesAndLimits = 0x12, which Dawn adds to every device of a core adapter), not in the
 * later order that starts at CoreFeaturesAndLimits = 1 and moves ShaderF16 to 0x0B; the Dawn
 * features start at 0x50000 (ChromiumExperimentalSubgroupMatrix = 0x50037). How this was
 * checked: a device requested with one feature reports it and 0x12 (wgpuDeviceGetFeatures), and
 * a request for a feature the adapter lacks fails naming it (3 is not refused, 6 to 8 are
 * "TextureCompressionETC2", "...ASTC", "...ASTCSliced3D", 0x13 and above are invalid).
 * With the later numbers, gpux asked for RG11B10UfloatRenderable (0x0B) where it meant ShaderF16:
 * the device "had" feature 0x0B and Dawn's WGSL reader refused `enable f16;` ("extension 'f16' is
 * not allowed in the current environment"), since it allows the extension only on a device made
 * with ShaderF16. gpux__wg_f16_usable's probe shader stays as the guard against a library that
 * numbers them otherwise. Only what gpux calls is declared; layouts that changed between Dawn
 * versions (bind group layout entries, pipeline layouts) are avoided by using automatic layouts.
 * A start-up self-test (a compute dispatch whose result is checked) guards against a library
 * whose ABI differs. */
#ifndef GPUX_WEBGPU_ABI_H
#define GPUX_WEBGPU_ABI_H

#include <stddef.h>
#include <stdint.h>

typedef uint64_t WGPUFlags;
typedef uint32_t WGPUBool;

typedef struct WGPUAdapterImpl *WGPUAdapter;
typedef struct WGPUBindGroupImpl *WGPUBindGroup;
typedef struct WGPUBindGroupLayoutImpl *WGPUBindGroupLayout;
typedef struct WGPUBufferImpl *WGPUBuffer;
typedef struct WGPUCommandBufferImpl *WGPUCommandBuffer;
typedef struct WGPUCommandEncoderImpl *WGPUCommandEncoder;
typedef struct WGPUComputePassEncoderImpl *WGPUComputePassEncoder;
typedef struct WGPUComputePipelineImpl *WGPUComputePipeline;
typedef struct WGPUDeviceImpl *WGPUDevice;
typedef struct WGPUInstanceImpl *WGPUInstance;
typedef struct WGPUPipelineLayoutImpl *WGPUPipelineLayout;
typedef struct WGPUQuerySetImpl *WGPUQuerySet;
typedef struct WGPUQueueImpl *WGPUQueue;
typedef struct WGPUShaderModuleImpl *WGPUShaderModule;
typedef struct WGPUSurfaceImpl *WGPUSurface;

#define WGPU_STRLEN SIZE_MAX
#define WGPU_WHOLE_SIZE UINT64_MAX
#define WGPU_LIMIT_U32_UNDEFINED UINT32_MAX
#define WGPU_LIMIT_U64_UNDEFINED UINT64_MAX

/* ---- enums (32-bit) ---- */
enum { WGPUAdapterType_DiscreteGPU = 1, WGPUAdapterType_IntegratedGPU = 2, WGPUAdapterType_CPU = 3,
       WGPUAdapterType_Unknown = 4 };
enum { WGPUBackendType_Undefined = 0, WGPUBackendType_Null = 1, WGPUBackendType_WebGPU = 2,
       WGPUBackendType_D3D11 = 3, WGPUBackendType_D3D12 = 4, WGPUBackendType_Metal = 5,
       WGPUBackendType_Vulkan = 6, WGPUBackendType_OpenGL = 7, WGPUBackendType_OpenGLES = 8 };
enum { WGPUCallbackMode_WaitAnyOnly = 1, WGPUCallbackMode_AllowProcessEvents = 2,
       WGPUCallbackMode_AllowSpontaneous = 3 };
enum { WGPUCompilationMessageType_Error = 1, WGPUCompilationMessageType_Warning = 2,
       WGPUCompilationMessageType_Info = 3 };
enum { WGPUDeviceLostReason_Unknown = 1, WGPUDeviceLostReason_Destroyed = 2,
       WGPUDeviceLostReason_CallbackCancelled = 3, WGPUDeviceLostReason_FailedCreation = 4 };
enum { WGPUErrorFilter_Validation = 1, WGPUErrorFilter_OutOfMemory = 2, WGPUErrorFilter_Internal = 3 };
enum { WGPUErrorType_NoError = 1, WGPUErrorType_Validation = 2, WGPUErrorType_OutOfMemory = 3,
       WGPUErrorType_Internal = 4, WGPUErrorType_Unknown = 5 };
enum { WGPUFeatureName_TimestampQuery = 0x03, WGPUFeatureName_ShaderF16 = 0x0A, WGPUFeatureName_Subgroups = 0x11,
       WGPUFeatureName_CoreFeaturesAndLimits = 0x12, WGPUFeatureName_ChromiumExperimentalSubgroupMatrix = 0x50037 };
enum { WGPUMapAsyncStatus_Success = 1, WGPUMapAsyncStatus_CallbackCancelled = 2,
       WGPUMapAsyncStatus_Error = 3, WGPUMapAsyncStatus_Aborted = 4 };
enum { WGPUPopErrorScopeStatus_Success = 1, WGPUPopErrorScopeStatus_CallbackCancelled = 2,
       WGPUPopErrorScopeStatus_Error = 3 };
enum { WGPUCreatePipelineAsyncStatus_Success = 1, WGPUCreatePipelineAsyncStatus_CallbackCancelled = 2,
       WGPUCreatePipelineAsyncStatus_ValidationError = 3, WGPUCreatePipelineAsyncStatus_InternalError = 4 };
enum { WGPUQueryType_Occlusion = 1, WGPUQueryType_Timestamp = 2 };
enum { WGPUPowerPreference_Undefined = 0, WGPUPowerPreference_LowPower = 1,
       WGPUPowerPreference_HighPerformance = 2 };
enum { WGPURequestAdapterStatus_Success = 1, WGPURequestAdapterStatus_CallbackCancelled = 2,
       WGPURequestAdapterStatus_Unavailable = 3, WGPURequestAdapterStatus_Error = 4 };
enum { WGPURequestDeviceStatus_Success = 1, WGPURequestDeviceStatus_CallbackCancelled = 2,
       WGPURequestDeviceStatus_Error = 3 };
enum { WGPUStatus_Success = 1, WGPUStatus_Error = 2 };
enum { WGPUSType_ShaderSourceWGSL = 0x00000002, WGPUSType_DawnCacheDeviceDescriptor = 0x00050007,
       WGPUSType_DawnTogglesDescriptor = 0x0005000A, WGPUSType_AdapterPropertiesSubgroupMatrixConfigs = 0x0005003B };
enum { WGPUWaitStatus_Success = 1, WGPUWaitStatus_TimedOut = 2, WGPUWaitStatus_Error = 3 };
typedef uint32_t WGPUEnum;

/* ---- flags (64-bit) ---- */
#define WGPUBufferUsage_MapRead ((WGPUFlags)0x0001)
#define WGPUBufferUsage_QueryResolve ((WGPUFlags)0x0200)
#define WGPUBufferUsage_MapWrite ((WGPUFlags)0x0002)
#define WGPUBufferUsage_CopySrc ((WGPUFlags)0x0004)
#define WGPUBufferUsage_CopyDst ((WGPUFlags)0x0008)
#define WGPUBufferUsage_Uniform ((WGPUFlags)0x0040)
#define WGPUBufferUsage_Storage ((WGPUFlags)0x0080)
#define WGPUMapMode_Read ((WGPUFlags)0x0001)

/* ---- structs ---- */
typedef struct WGPUStringView {
  const char *data;
  size_t length;                 /* WGPU_STRLEN: NUL-terminated */
} WGPUStringView;

typedef struct WGPUChainedStruct {
  struct WGPUChainedStruct *next;
  WGPUEnum sType;
} WGPUChainedStruct;

typedef struct WGPUFuture {
  uint64_t id;
} WGPUFuture;

typedef struct WGPUFutureWaitInfo {
  WGPUFuture future;
  WGPUBool completed;
} WGPUFutureWaitInfo;

typedef struct WGPUInstanceCapabilities {
  WGPUChainedStruct *nextInChain;
  WGPUBool timedWaitAnyEnable;
  size_t timedWaitAnyMaxCount;
} WGPUInstanceCapabilities;

typedef struct WGPUInstanceDescriptor {
  WGPUChainedStruct *nextInChain;
  WGPUInstanceCapabilities capabilities;
} WGPUInstanceDescriptor;

typedef struct WGPURequestAdapterOptions {
  WGPUChainedStruct *nextInChain;
  WGPUEnum featureLevel;
  WGPUEnum powerPreference;
  WGPUBool forceFallbackAdapter;
  WGPUEnum backendType;
  WGPUSurface compatibleSurface;
} WGPURequestAdapterOptions;

typedef struct WGPUAdapterInfo {
  WGPUChainedStruct *nextInChain;
  WGPUStringView vendor;
  WGPUStringView architecture;
  WGPUStringView device;
  WGPUStringView description;
  WGPUEnum backendType;
  WGPUEnum adapterType;
  uint32_t vendorID;
  uint32_t deviceID;
  uint32_t subgroupMinSize;
  uint32_t subgroupMaxSize;
} WGPUAdapterInfo;

/* Chained to WGPUAdapterInfo when the adapter has ChromiumExperimentalSubgroupMatrix: the matrix
 * shapes and component types (F32 = 1, F16 = 2, U32 = 3, I32 = 4, U8 = 5, I8 = 6) it multiplies. */
typedef struct WGPUSubgroupMatrixConfig {
  WGPUEnum componentType;
  WGPUEnum resultComponentType;
  uint32_t M, N, K;
} WGPUSubgroupMatrixConfig;

typedef struct WGPUAdapterPropertiesSubgroupMatrixConfigs {
  WGPUChainedStruct chain;
  size_t configCount;
  const WGPUSubgroupMatrixConfig *configs;
} WGPUAdapterPropertiesSubgroupMatrixConfigs;

typedef struct WGPULimits {
  WGPUChainedStruct *nextInChain;
  uint32_t maxTextureDimension1D;
  uint32_t maxTextureDimension2D;
  uint32_t maxTextureDimension3D;
  uint32_t maxTextureArrayLayers;
  uint32_t maxBindGroups;
  uint32_t maxBindGroupsPlusVertexBuffers;
  uint32_t maxBindingsPerBindGroup;
  uint32_t maxDynamicUniformBuffersPerPipelineLayout;
  uint32_t maxDynamicStorageBuffersPerPipelineLayout;
  uint32_t maxSampledTexturesPerShaderStage;
  uint32_t maxSamplersPerShaderStage;
  uint32_t maxStorageBuffersPerShaderStage;
  uint32_t maxStorageTexturesPerShaderStage;
  uint32_t maxUniformBuffersPerShaderStage;
  uint64_t maxUniformBufferBindingSize;
  uint64_t maxStorageBufferBindingSize;
  uint32_t minUniformBufferOffsetAlignment;
  uint32_t minStorageBufferOffsetAlignment;
  uint32_t maxVertexBuffers;
  uint64_t maxBufferSize;
  uint32_t maxVertexAttributes;
  uint32_t maxVertexBufferArrayStride;
  uint32_t maxInterStageShaderVariables;
  uint32_t maxColorAttachments;
  uint32_t maxColorAttachmentBytesPerSample;
  uint32_t maxComputeWorkgroupStorageSize;
  uint32_t maxComputeInvocationsPerWorkgroup;
  uint32_t maxComputeWorkgroupSizeX;
  uint32_t maxComputeWorkgroupSizeY;
  uint32_t maxComputeWorkgroupSizeZ;
  uint32_t maxComputeWorkgroupsPerDimension;
  uint32_t maxImmediateSize;
} WGPULimits;

typedef void (*WGPURequestAdapterCallback)(WGPUEnum status, WGPUAdapter adapter, WGPUStringView message,
                                           void *userdata1, void *userdata2);
typedef void (*WGPURequestDeviceCallback)(WGPUEnum status, WGPUDevice device, WGPUStringView message,
                                          void *userdata1, void *userdata2);
typedef void (*WGPUDeviceLostCallback)(WGPUDevice const *device, WGPUEnum reason, WGPUStringView message,
                                       void *userdata1, void *userdata2);
typedef void (*WGPUUncapturedErrorCallback)(WGPUDevice const *device, WGPUEnum type, WGPUStringView message,
                                            void *userdata1, void *userdata2);
typedef void (*WGPUBufferMapCallback)(WGPUEnum status, WGPUStringView message, void *userdata1, void *userdata2);
typedef void (*WGPUQueueWorkDoneCallback)(WGPUEnum status, void *userdata1, void *userdata2);
typedef void (*WGPUPopErrorScopeCallback)(WGPUEnum status, WGPUEnum type, WGPUStringView message,
                                          void *userdata1, void *userdata2);
typedef void (*WGPUCreateComputePipelineAsyncCallback)(WGPUEnum status, WGPUComputePipeline pipeline,
                                                       WGPUStringView message, void *userdata1, void *userdata2);
struct WGPUCompilationInfo;
typedef void (*WGPUCompilationInfoCallback)(WGPUEnum status, const struct WGPUCompilationInfo *info,
                                            void *userdata1, void *userdata2);
typedef size_t (*WGPUDawnLoadCacheDataFunction)(const void *key, size_t keySize, void *value, size_t valueSize,
                                                void *userdata);
typedef void (*WGPUDawnStoreCacheDataFunction)(const void *key, size_t keySize, const void *value, size_t valueSize,
                                               void *userdata);

/* Every *CallbackInfo with a mode has this layout; the uncaptured-error one has no mode. */
#define GPUX__WGPU_CALLBACK_INFO(Name, Fn) \
  typedef struct Name {                    \
    WGPUChainedStruct *nextInChain;        \
    WGPUEnum mode;                         \
    Fn callback;                           \
    void *userdata1;                       \
    void *userdata2;                       \
  } Name
GPUX__WGPU_CALLBACK_INFO(WGPURequestAdapterCallbackInfo, WGPURequestAdapterCallback);
GPUX__WGPU_CALLBACK_INFO(WGPURequestDeviceCallbackInfo, WGPURequestDeviceCallback);
GPUX__WGPU_CALLBACK_INFO(WGPUDeviceLostCallbackInfo, WGPUDeviceLostCallback);
GPUX__WGPU_CALLBACK_INFO(WGPUBufferMapCallbackInfo, WGPUBufferMapCallback);
GPUX__WGPU_CALLBACK_INFO(WGPUPopErrorScopeCallbackInfo, WGPUPopErrorScopeCallback);
GPUX__WGPU_CALLBACK_INFO(WGPUCreateComputePipelineAsyncCallbackInfo, WGPUCreateComputePipelineAsyncCallback);
GPUX__WGPU_CALLBACK_INFO(WGPUCompilationInfoCallbackInfo, WGPUCompilationInfoCallback);
GPUX__WGPU_CALLBACK_INFO(WGPUQueueWorkDoneCallbackInfo, WGPUQueueWorkDoneCallback);

typedef struct WGPUUncapturedErrorCallbackInfo {
  WGPUChainedStruct *nextInChain;
  WGPUUncapturedErrorCallback callback;
  void *userdata1;
  void *userdata2;
} WGPUUncapturedErrorCallbackInfo;

typedef struct WGPUQueueDescriptor {
  WGPUChainedStruct *nextInChain;
  WGPUStringView label;
} WGPUQueueDescriptor;

typedef struct WGPUDeviceDescriptor {
  WGPUChainedStruct *nextInChain;
  WGPUStringView label;
  size_t requiredFeatureCount;
  const WGPUEnum *requiredFeatures;
  const WGPULimits *requiredLimits;
  WGPUQueueDescriptor defaultQueue;
  WGPUDeviceLostCallbackInfo deviceLostCallbackInfo;
  WGPUUncapturedErrorCallbackInfo uncapturedErrorCallbackInfo;
} WGPUDeviceDescriptor;

/* Dawn: toggles chained to WGPUDeviceDescriptor ("disable_workgroup_init", ...). */
typedef struct WGPUDawnTogglesDescriptor {
  WGPUChainedStruct chain;
  size_t enabledToggleCount;
  const char *const *enabledToggles;
  size_t disabledToggleCount;
  const char *const *disabledToggles;
} WGPUDawnTogglesDescriptor;

/* Dawn: the pipeline cache, chained to WGPUDeviceDescriptor. */
typedef struct WGPUDawnCacheDeviceDescriptor {
  WGPUChainedStruct chain;
  WGPUStringView isolationKey;
  WGPUDawnLoadCacheDataFunction loadDataFunction;
  WGPUDawnStoreCacheDataFunction storeDataFunction;
  void *functionUserdata;
} WGPUDawnCacheDeviceDescriptor;

typedef struct WGPUSupportedFeatures {
  size_t featureCount;
  const WGPUEnum *features;
} WGPUSupportedFeatures;

typedef struct WGPUBufferDescriptor {
  WGPUChainedStruct *nextInChain;
  WGPUStringView label;
  WGPUFlags usage;
  uint64_t size;
  WGPUBool mappedAtCreation;
} WGPUBufferDescriptor;

typedef struct WGPUShaderSourceWGSL {
  WGPUChainedStruct chain;
  WGPUStringView code;
} WGPUShaderSourceWGSL;

typedef struct WGPUShaderModuleDescriptor {
  WGPUChainedStruct *nextInChain;
  WGPUStringView label;
} WGPUShaderModuleDescriptor;

typedef struct WGPUCompilationMessage {
  WGPUChainedStruct *nextInChain;
  WGPUStringView message;
  WGPUEnum type;
  uint64_t lineNum;
  uint64_t linePos;
  uint64_t offset;
  uint64_t length;
} WGPUCompilationMessage;

typedef struct WGPUCompilationInfo {
  WGPUChainedStruct *nextInChain;
  size_t messageCount;
  const WGPUCompilationMessage *messages;
} WGPUCompilationInfo;

typedef struct WGPUConstantEntry {
  WGPUChainedStruct *nextInChain;
  WGPUStringView key;
  double value;
} WGPUConstantEntry;

typedef struct WGPUComputeState {
  WGPUChainedStruct *nextInChain;
  WGPUShaderModule module;
  WGPUStringView entryPoint;
  size_t constantCount;
  const WGPUConstantEntry *constants;
} WGPUComputeState;

typedef struct WGPUComputePipelineDescriptor {
  WGPUChainedStruct *nextInChain;
  WGPUStringView label;
  WGPUPipelineLayout layout;     /* NULL: the layout is derived from the shader */
  WGPUComputeState compute;
} WGPUComputePipelineDescriptor;

typedef struct WGPUBindGroupEntry {
  WGPUChainedStruct *nextInChain;
  uint32_t binding;
  WGPUBuffer buffer;
  uint64_t offset;
  uint64_t size;
  void *sampler;
  void *textureView;
} WGPUBindGroupEntry;

typedef struct WGPUBindGroupDescriptor {
  WGPUChainedStruct *nextInChain;
  WGPUStringView label;
  WGPUBindGroupLayout layout;
  size_t entryCount;
  const WGPUBindGroupEntry *entries;
} WGPUBindGroupDescriptor;

typedef struct WGPUCommandEncoderDescriptor {
  WGPUChainedStruct *nextInChain;
  WGPUStringView label;
} WGPUCommandEncoderDescriptor;

typedef struct WGPUCommandBufferDescriptor {
  WGPUChainedStruct *nextInChain;
  WGPUStringView label;
} WGPUCommandBufferDescriptor;

/* Timestamps written at the start and end of a pass (feature timestamp-query). */
typedef struct WGPUPassTimestampWrites {
  WGPUChainedStruct *nextInChain;
  WGPUQuerySet querySet;
  uint32_t beginningOfPassWriteIndex;
  uint32_t endOfPassWriteIndex;
} WGPUPassTimestampWrites;

typedef struct WGPUComputePassDescriptor {
  WGPUChainedStruct *nextInChain;
  WGPUStringView label;
  const WGPUPassTimestampWrites *timestampWrites;
} WGPUComputePassDescriptor;

typedef struct WGPUQuerySetDescriptor {
  WGPUChainedStruct *nextInChain;
  WGPUStringView label;
  WGPUEnum type;
  uint32_t count;
} WGPUQuerySetDescriptor;

/* ---- the functions gpux resolves: X(return type, name, parameter list) ---- */
#define GPUX__WGPU_FUNCS(X)                                                                              \
  X(WGPUInstance, wgpuCreateInstance, (const WGPUInstanceDescriptor *desc))                              \
  X(WGPUEnum, wgpuGetInstanceCapabilities, (WGPUInstanceCapabilities *caps))                             \
  X(WGPUFuture, wgpuInstanceRequestAdapter, (WGPUInstance i, const WGPURequestAdapterOptions *o,          \
                                             WGPURequestAdapterCallbackInfo cb))                         \
  X(WGPUEnum, wgpuInstanceWaitAny, (WGPUInstance i, size_t n, WGPUFutureWaitInfo *f, uint64_t timeout_ns)) \
  X(void, wgpuInstanceProcessEvents, (WGPUInstance i))                                                   \
  X(void, wgpuInstanceRelease, (WGPUInstance i))                                                         \
  X(WGPUEnum, wgpuAdapterGetInfo, (WGPUAdapter a, WGPUAdapterInfo *info))                                \
  X(void, wgpuAdapterInfoFreeMembers, (WGPUAdapterInfo info))                                            \
  X(WGPUEnum, wgpuAdapterGetLimits, (WGPUAdapter a, WGPULimits *limits))                                 \
  X(WGPUBool, wgpuAdapterHasFeature, (WGPUAdapter a, WGPUEnum feature))                                  \
  X(void, wgpuAdapterGetFeatures, (WGPUAdapter a, WGPUSupportedFeatures *features))                      \
  X(void, wgpuSupportedFeaturesFreeMembers, (WGPUSupportedFeatures features))                            \
  X(void, wgpuAdapterPropertiesSubgroupMatrixConfigsFreeMembers,                                         \
    (WGPUAdapterPropertiesSubgroupMatrixConfigs configs))                                                \
  X(WGPUBool, wgpuDeviceHasFeature, (WGPUDevice d, WGPUEnum feature))                                    \
  X(WGPUFuture, wgpuAdapterRequestDevice, (WGPUAdapter a, const WGPUDeviceDescriptor *d,                  \
                                           WGPURequestDeviceCallbackInfo cb))                            \
  X(void, wgpuAdapterRelease, (WGPUAdapter a))                                                           \
  X(WGPUEnum, wgpuDeviceGetLimits, (WGPUDevice d, WGPULimits *limits))                                   \
  X(WGPUQueue, wgpuDeviceGetQueue, (WGPUDevice d))                                                       \
  X(WGPUBuffer, wgpuDeviceCreateBuffer, (WGPUDevice d, const WGPUBufferDescriptor *desc))                \
  X(WGPUShaderModule, wgpuDeviceCreateShaderModule, (WGPUDevice d, const WGPUShaderModuleDescriptor *desc)) \
  X(WGPUComputePipeline, wgpuDeviceCreateComputePipeline, (WGPUDevice d,                                 \
                                                           const WGPUComputePipelineDescriptor *desc))   \
  X(WGPUFuture, wgpuDeviceCreateComputePipelineAsync, (WGPUDevice d, const WGPUComputePipelineDescriptor *desc, \
                                                       WGPUCreateComputePipelineAsyncCallbackInfo cb))  \
  X(WGPUBindGroup, wgpuDeviceCreateBindGroup, (WGPUDevice d, const WGPUBindGroupDescriptor *desc))       \
  X(WGPUCommandEncoder, wgpuDeviceCreateCommandEncoder, (WGPUDevice d,                                   \
                                                         const WGPUCommandEncoderDescriptor *desc))      \
  X(void, wgpuDevicePushErrorScope, (WGPUDevice d, WGPUEnum filter))                                     \
  X(WGPUFuture, wgpuDevicePopErrorScope, (WGPUDevice d, WGPUPopErrorScopeCallbackInfo cb))               \
  X(void, wgpuDeviceDestroy, (WGPUDevice d))                                                             \
  X(void, wgpuDeviceForceLoss, (WGPUDevice d, WGPUEnum reason, WGPUStringView message))                  \
  X(void, wgpuDeviceRelease, (WGPUDevice d))                                                             \
  X(WGPUFuture, wgpuShaderModuleGetCompilationInfo, (WGPUShaderModule m, WGPUCompilationInfoCallbackInfo cb)) \
  X(void, wgpuShaderModuleRelease, (WGPUShaderModule m))                                                 \
  X(WGPUBindGroupLayout, wgpuComputePipelineGetBindGroupLayout, (WGPUComputePipeline p, uint32_t group)) \
  X(void, wgpuComputePipelineRelease, (WGPUComputePipeline p))                                           \
  X(void, wgpuBindGroupLayoutRelease, (WGPUBindGroupLayout l))                                           \
  X(void, wgpuBindGroupRelease, (WGPUBindGroup g))                                                       \
  X(WGPUComputePassEncoder, wgpuCommandEncoderBeginComputePass, (WGPUCommandEncoder e,                   \
                                                                 const WGPUComputePassDescriptor *d))    \
  X(void, wgpuCommandEncoderCopyBufferToBuffer, (WGPUCommandEncoder e, WGPUBuffer src, uint64_t src_off, \
                                                 WGPUBuffer dst, uint64_t dst_off, uint64_t size))       \
  X(WGPUCommandBuffer, wgpuCommandEncoderFinish, (WGPUCommandEncoder e, const WGPUCommandBufferDescriptor *d)) \
  X(void, wgpuCommandEncoderRelease, (WGPUCommandEncoder e))                                             \
  X(void, wgpuCommandBufferRelease, (WGPUCommandBuffer b))                                               \
  X(void, wgpuComputePassEncoderSetPipeline, (WGPUComputePassEncoder p, WGPUComputePipeline pl))         \
  X(void, wgpuComputePassEncoderSetBindGroup, (WGPUComputePassEncoder p, uint32_t index, WGPUBindGroup g, \
                                               size_t n_dynamic, const uint32_t *dynamic_offsets))       \
  X(void, wgpuComputePassEncoderDispatchWorkgroups, (WGPUComputePassEncoder p, uint32_t x, uint32_t y,   \
                                                     uint32_t z))                                        \
  X(void, wgpuComputePassEncoderEnd, (WGPUComputePassEncoder p))                                         \
  X(WGPUQuerySet, wgpuDeviceCreateQuerySet, (WGPUDevice d, const WGPUQuerySetDescriptor *desc))          \
  X(void, wgpuCommandEncoderResolveQuerySet, (WGPUCommandEncoder e, WGPUQuerySet q, uint32_t first,      \
                                              uint32_t count, WGPUBuffer dst, uint64_t dst_off))         \
  X(void, wgpuQuerySetDestroy, (WGPUQuerySet q))                                                         \
  X(void, wgpuQuerySetRelease, (WGPUQuerySet q))                                                         \
  X(void, wgpuComputePassEncoderRelease, (WGPUComputePassEncoder p))                                     \
  X(void, wgpuQueueSubmit, (WGPUQueue q, size_t n, const WGPUCommandBuffer *buffers))                    \
  X(void, wgpuQueueWriteBuffer, (WGPUQueue q, WGPUBuffer b, uint64_t offset, const void *data, size_t size)) \
  X(void, wgpuQueueRelease, (WGPUQueue q))                                                               \
  X(WGPUFuture, wgpuQueueOnSubmittedWorkDone, (WGPUQueue q, WGPUQueueWorkDoneCallbackInfo cb))           \
  X(WGPUFuture, wgpuBufferMapAsync, (WGPUBuffer b, WGPUFlags mode, size_t offset, size_t size,           \
                                     WGPUBufferMapCallbackInfo cb))                                      \
  X(const void *, wgpuBufferGetConstMappedRange, (WGPUBuffer b, size_t offset, size_t size))             \
  X(void *, wgpuBufferGetMappedRange, (WGPUBuffer b, size_t offset, size_t size))                        \
  X(void, wgpuBufferUnmap, (WGPUBuffer b))                                                               \
  X(void, wgpuBufferDestroy, (WGPUBuffer b))                                                             \
  X(void, wgpuBufferRelease, (WGPUBuffer b))

typedef struct gpux__wgpu_table {
#define GPUX__WGPU_MEMBER(ret, name, params) ret(*name) params;
  GPUX__WGPU_FUNCS(GPUX__WGPU_MEMBER)
#undef GPUX__WGPU_MEMBER
} gpux__wgpu_table;

#endif
