// RUN: nnc-opt --split-input-file %s -p 'prune-channels{ratio=0.5}' | filecheck %s
// RUN: nnc-opt --split-input-file %s -p 'prune-channels{ratio=0.5 norm=l2}' | filecheck %s

// conv 1 -> 4 channels with filters (1, 0.1, 2, 0.2): channels 1 and 3 (smallest norms) go;
// the kept filters are (1, 2) = 0x3F800000, 0x40000000, the bias and the consumer conv
// shrink to 2 channels, and the kept indices are recorded.

// CHECK-LABEL: func.func @main
// CHECK-NEXT:    %[[B:.*]] = "nn.constant"() <{value = #nn.weight<"f32", [2], "0x0000000000000000">}>
// CHECK-NEXT:    %[[W:.*]] = "nn.constant"() <{value = #nn.weight<"f32", [2, 1, 1, 1], "0x0000803F00000040">}>
// CHECK-NEXT:    %[[C:.*]] = "nn.conv"(%0, %[[W]], %[[B]]) {{.*}} {nn.kept_channels = array<i64: 0, 2>} : {{.*}} -> tensor<1x2x3x3xf32>
// CHECK-NEXT:    %[[R:.*]] = "nn.relu"(%[[C]]) : (tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32>
// CHECK-NEXT:    %[[W2:.*]] = "nn.constant"() <{value = #nn.weight<"f32", [1, 2, 1, 1], "0x0000803F0000803F">}>
// CHECK-NEXT:    "nn.conv"(%[[R]], %[[W2]])

builtin.module {
  func.func @main(%0: tensor<1x1x3x3xf32>) -> tensor<1x1x3x3xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [4, 1, 1, 1], "0x0000803FCDCCCC3D00000040CDCC4C3E">}> : () -> tensor<4x1x1x1xf32>
    %2 = "nn.constant"() <{value = #nn.weight<"f32", [4], "0x00000000000000000000000000000000">}> : () -> tensor<4xf32>
    %3 = "nn.conv"(%0, %1, %2) <{strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, group = 1 : i64, activation = "none", act_alpha = 0.000000e+00 : f64, act_beta = 0.000000e+00 : f64, operandSegmentSizes = array<i32: 1, 1, 1, 0>}> : (tensor<1x1x3x3xf32>, tensor<4x1x1x1xf32>, tensor<4xf32>) -> tensor<1x4x3x3xf32>
    %4 = "nn.relu"(%3) : (tensor<1x4x3x3xf32>) -> tensor<1x4x3x3xf32>
    %5 = "nn.constant"() <{value = #nn.weight<"f32", [1, 4, 1, 1], "0x0000803F0000803F0000803F0000803F">}> : () -> tensor<1x4x1x1xf32>
    %6 = "nn.conv"(%4, %5) <{strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, group = 1 : i64, activation = "none", act_alpha = 0.000000e+00 : f64, act_beta = 0.000000e+00 : f64, operandSegmentSizes = array<i32: 1, 1, 0, 0>}> : (tensor<1x4x3x3xf32>, tensor<1x4x1x1xf32>) -> tensor<1x1x3x3xf32>
    func.return %6 : tensor<1x1x3x3xf32>
  }
}

// -----

// The conv output is the model output (fixed channels): unchanged.

// CHECK-LABEL: func.func @main
// CHECK-NEXT:    "nn.constant"() <{value = #nn.weight<"f32", [4, 1, 1, 1]
// CHECK-NEXT:    %[[C:.*]] = "nn.conv"
// CHECK-SAME:    -> tensor<1x4x3x3xf32>
// CHECK-NOT:     nn.kept_channels

builtin.module {
  func.func @main(%0: tensor<1x1x3x3xf32>) -> tensor<1x4x3x3xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [4, 1, 1, 1], "0x0000803FCDCCCC3D00000040CDCC4C3E">}> : () -> tensor<4x1x1x1xf32>
    %2 = "nn.conv"(%0, %1) <{strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, group = 1 : i64, activation = "none", act_alpha = 0.000000e+00 : f64, act_beta = 0.000000e+00 : f64, operandSegmentSizes = array<i32: 1, 1, 0, 0>}> : (tensor<1x1x3x3xf32>, tensor<4x1x1x1xf32>) -> tensor<1x4x3x3xf32>
    func.return %2 : tensor<1x4x3x3xf32>
  }
}
