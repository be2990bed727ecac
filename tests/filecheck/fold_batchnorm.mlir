// RUN: nnc-opt --split-input-file %s -p fold-batchnorm | filecheck %s

// Fold conv -> batch_norm. s = scale / sqrt(var + eps) = (2, 4);
// w2 = w * s = (2, 2 | 4, 4); b2 = (b - mean) * s + shift = (0*2 + 1, 1*4 + 1) = (1, 5).

// CHECK-LABEL: func.func @main
// CHECK-NEXT:    %[[W:.*]] = "nn.constant"() <{value = #nn.weight<"f32", [2, 2, 1, 1], "0x00000040000000400000804000008040">}>
// CHECK-NEXT:    %[[B:.*]] = "nn.constant"() <{value = #nn.weight<"f32", [2], "0x0000803F0000A040">}>
// CHECK-NEXT:    %[[Y:.*]] = "nn.conv"(%0, %[[W]], %[[B]])
// CHECK-SAME:    activation = "none"
// CHECK-NEXT:    func.return %[[Y]]
// CHECK-NOT:     nn.batch_norm

builtin.module {
  func.func @main(%0: tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [2, 2, 1, 1], "0x0000803F0000803F0000803F0000803F">}> : () -> tensor<2x2x1x1xf32>
    %2 = "nn.constant"() <{value = #nn.weight<"f32", [2], "0x0000803F0000803F">}> : () -> tensor<2xf32>
    %3 = "nn.conv"(%0, %1, %2) <{strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, group = 1 : i64, activation = "none", act_alpha = 0.000000e+00 : f64, act_beta = 0.000000e+00 : f64, operandSegmentSizes = array<i32: 1, 1, 1, 0>}> : (tensor<1x2x3x3xf32>, tensor<2x2x1x1xf32>, tensor<2xf32>) -> tensor<1x2x3x3xf32>
    %4 = "nn.constant"() <{value = #nn.weight<"f32", [2], "0x0000004000008040">}> : () -> tensor<2xf32>
    %5 = "nn.constant"() <{value = #nn.weight<"f32", [2], "0x0000803F0000803F">}> : () -> tensor<2xf32>
    %6 = "nn.constant"() <{value = #nn.weight<"f32", [2], "0x0000803F00000000">}> : () -> tensor<2xf32>
    %7 = "nn.constant"() <{value = #nn.weight<"f32", [2], "0x0000803F0000803F">}> : () -> tensor<2xf32>
    %8 = "nn.batch_norm"(%3, %4, %5, %6, %7) <{epsilon = 0.000000e+00 : f64}> : (tensor<1x2x3x3xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>) -> tensor<1x2x3x3xf32>
    func.return %8 : tensor<1x2x3x3xf32>
  }
}

// -----

// Gemm -> rank-2 batch_norm folds per output column: B2 = B * s, c2 = shift - mean * s.
// CHECK-LABEL: func.func @main
// CHECK-NEXT:    %[[B:.*]] = "nn.constant"() <{value = #nn.weight<"f32", [2, 2], "0x00000040000080400000004000008040">}>
// CHECK-NEXT:    %[[C:.*]] = "nn.constant"() <{value = #nn.weight<"f32", [2], "0x0000000000000000">}>
// CHECK-NEXT:    %[[Y:.*]] = "nn.gemm"(%0, %[[B]], %[[C]])
// CHECK-SAME:    beta = 1.000000e+00
// CHECK-NEXT:    func.return %[[Y]]

builtin.module {
  func.func @main(%0: tensor<3x2xf32>) -> tensor<3x2xf32> attributes {nn.input_names = ["a"], nn.output_names = ["y"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [2, 2], "0x0000803F0000803F0000803F0000803F">}> : () -> tensor<2x2xf32>
    %2 = "nn.gemm"(%0, %1) <{trans_a = 0 : i64, trans_b = 0 : i64, alpha = 1.000000e+00 : f64, beta = 1.000000e+00 : f64, activation = "none", act_alpha = 0.000000e+00 : f64, act_beta = 0.000000e+00 : f64}> : (tensor<3x2xf32>, tensor<2x2xf32>) -> tensor<3x2xf32>
    %3 = "nn.constant"() <{value = #nn.weight<"f32", [2], "0x0000004000008040">}> : () -> tensor<2xf32>
    %4 = "nn.constant"() <{value = #nn.weight<"f32", [2], "0x0000000000000000">}> : () -> tensor<2xf32>
    %5 = "nn.constant"() <{value = #nn.weight<"f32", [2], "0x0000803F0000803F">}> : () -> tensor<2xf32>
    %6 = "nn.batch_norm"(%2, %3, %4, %4, %5) <{epsilon = 0.000000e+00 : f64}> : (tensor<3x2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>) -> tensor<3x2xf32>
    func.return %6 : tensor<3x2xf32>
  }
}

// -----

// Negative: the conv result is also returned, so the batch norm stays.
// CHECK-LABEL: func.func @main
// CHECK:         %[[C:.*]] = "nn.conv"
// CHECK:         %[[BN:.*]] = "nn.batch_norm"(%[[C]],
// CHECK:         func.return %[[BN]], %[[C]]

builtin.module {
  func.func @main(%0: tensor<1x2x3x3xf32>) -> (tensor<1x2x3x3xf32>, tensor<1x2x3x3xf32>) attributes {nn.input_names = ["x"], nn.output_names = ["y", "c"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [2, 2, 1, 1], "0x0000803F0000803F0000803F0000803F">}> : () -> tensor<2x2x1x1xf32>
    %2 = "nn.conv"(%0, %1) <{strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, group = 1 : i64, activation = "none", act_alpha = 0.000000e+00 : f64, act_beta = 0.000000e+00 : f64, operandSegmentSizes = array<i32: 1, 1, 0, 0>}> : (tensor<1x2x3x3xf32>, tensor<2x2x1x1xf32>) -> tensor<1x2x3x3xf32>
    %3 = "nn.constant"() <{value = #nn.weight<"f32", [2], "0x0000004000008040">}> : () -> tensor<2xf32>
    %4 = "nn.batch_norm"(%2, %3, %3, %3, %3) <{epsilon = 1.000000e-05 : f64}> : (tensor<1x2x3x3xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>) -> tensor<1x2x3x3xf32>
    func.return %4, %2 : tensor<1x2x3x3xf32>, tensor<1x2x3x3xf32>
  }
}

// -----

// Negative: a standalone batch norm is left unchanged.
// CHECK-LABEL: func.func @main
// CHECK:         "nn.batch_norm"(%0,

builtin.module {
  func.func @main(%0: tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [2], "0x0000004000008040">}> : () -> tensor<2xf32>
    %2 = "nn.batch_norm"(%0, %1, %1, %1, %1) <{epsilon = 1.000000e-05 : f64}> : (tensor<1x2x3x3xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>) -> tensor<1x2x3x3xf32>
    func.return %2 : tensor<1x2x3x3xf32>
  }
}
