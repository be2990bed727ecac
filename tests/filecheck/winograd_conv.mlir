// RUN: nnc-opt --split-input-file %s -p winograd-conv | filecheck %s
// RUN: nnc-opt --split-input-file %s -p 'winograd-conv{tile=4}' | filecheck %s --check-prefix=F4

// 3x3 stride-1 conv (all-ones 1x1x3x3 weight, bias, pads 1, relu) -> winograd.
// F(2x2): U = G 1 G^T = outer(g, g) with g = row sums of G = (1, 1.5, 0.5, 1):
// 0x3F800000 = 1, 0x3FC00000 = 1.5, 0x3F000000 = 0.5, 0x40100000 = 2.25, 0x3F400000 = 0.75,
// 0x3E800000 = 0.25 (little-endian hex). The original 3x3 weight is gone.

// CHECK-LABEL: func.func @main
// CHECK-NEXT:    %[[B:.*]] = "nn.constant"() <{value = #nn.weight<"f32", [1], "0x0000803F">}>
// CHECK-NEXT:    %[[U:.*]] = "nn.constant"() <{value = #nn.weight<"f32", [16, 1, 1], "0x0000803F0000C03F0000003F0000803F0000C03F000010400000403F0000C03F0000003F0000403F0000803E0000003F0000803F0000C03F0000003F0000803F">}>
// CHECK-NEXT:    %[[Y:.*]] = "nn.winograd_conv"(%0, %[[U]], %[[B]]) <{tile = 2 : i64, pads = array<i64: 1, 1, 1, 1>, activation = "relu"
// CHECK-NEXT:    func.return %[[Y]]
// CHECK-NOT:     nn.conv"

// F4-LABEL: func.func @main
// F4:         %[[U:.*]] = "nn.constant"() <{value = #nn.weight<"f32", [36, 1, 1],
// F4-NEXT:    "nn.winograd_conv"(%0, %[[U]], %{{.*}}) <{tile = 4 : i64, pads = array<i64: 1, 1, 1, 1>, activation = "relu"
// F4-NOT:     nn.conv"

builtin.module {
  func.func @main(%0: tensor<1x1x4x4xf32>) -> tensor<1x1x4x4xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [1, 1, 3, 3], "0x0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F">}> : () -> tensor<1x1x3x3xf32>
    %2 = "nn.constant"() <{value = #nn.weight<"f32", [1], "0x0000803F">}> : () -> tensor<1xf32>
    %3 = "nn.conv"(%0, %1, %2) <{strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, group = 1 : i64, activation = "relu", act_alpha = 0.000000e+00 : f64, act_beta = 0.000000e+00 : f64, operandSegmentSizes = array<i32: 1, 1, 1, 0>}> : (tensor<1x1x4x4xf32>, tensor<1x1x3x3xf32>, tensor<1xf32>) -> tensor<1x1x4x4xf32>
    func.return %3 : tensor<1x1x4x4xf32>
  }
}

// -----

// Stride 2: unchanged.
// CHECK-LABEL: func.func @main
// CHECK:         "nn.conv"(%0, %1, %2) <{strides = array<i64: 2, 2>
// CHECK-NOT:     nn.winograd_conv
// F4-LABEL:    func.func @main
// F4-NOT:      nn.winograd_conv

builtin.module {
  func.func @main(%0: tensor<1x1x5x5xf32>) -> tensor<1x1x2x2xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [1, 1, 3, 3], "0x0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F">}> : () -> tensor<1x1x3x3xf32>
    %2 = "nn.constant"() <{value = #nn.weight<"f32", [1], "0x0000803F">}> : () -> tensor<1xf32>
    %3 = "nn.conv"(%0, %1, %2) <{strides = array<i64: 2, 2>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, group = 1 : i64, activation = "none", act_alpha = 0.000000e+00 : f64, act_beta = 0.000000e+00 : f64, operandSegmentSizes = array<i32: 1, 1, 1, 0>}> : (tensor<1x1x5x5xf32>, tensor<1x1x3x3xf32>, tensor<1xf32>) -> tensor<1x1x2x2xf32>
    func.return %3 : tensor<1x1x2x2xf32>
  }
}

// -----

// 5x5 kernel: unchanged.
// CHECK-LABEL: func.func @main
// CHECK:         "nn.conv"(%0, %1, %2)
// CHECK-NOT:     nn.winograd_conv
// F4-LABEL:    func.func @main
// F4-NOT:      nn.winograd_conv

builtin.module {
  func.func @main(%0: tensor<1x1x4x4xf32>) -> tensor<1x1x4x4xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [1, 1, 5, 5], "0x0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F">}> : () -> tensor<1x1x5x5xf32>
    %2 = "nn.constant"() <{value = #nn.weight<"f32", [1], "0x0000803F">}> : () -> tensor<1xf32>
    %3 = "nn.conv"(%0, %1, %2) <{strides = array<i64: 1, 1>, pads = array<i64: 2, 2, 2, 2>, dilations = array<i64: 1, 1>, group = 1 : i64, activation = "none", act_alpha = 0.000000e+00 : f64, act_beta = 0.000000e+00 : f64, operandSegmentSizes = array<i32: 1, 1, 1, 0>}> : (tensor<1x1x4x4xf32>, tensor<1x1x5x5xf32>, tensor<1xf32>) -> tensor<1x1x4x4xf32>
    func.return %3 : tensor<1x1x4x4xf32>
  }
}
