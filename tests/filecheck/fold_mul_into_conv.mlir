// RUN: nnc-opt --split-input-file %s -p fold-mul-into-conv | filecheck %s

// conv(x, w=1, b=1) * k with k = (2, 4) of shape (2, 1, 1): w2 = (2, 2 | 4, 4), b2 = (2, 4).

// CHECK-LABEL: func.func @main
// CHECK-NEXT:    %[[W:.*]] = "nn.constant"() <{value = #nn.weight<"f32", [2, 2, 1, 1], "0x00000040000000400000804000008040">}>
// CHECK-NEXT:    %[[B:.*]] = "nn.constant"() <{value = #nn.weight<"f32", [2], "0x0000004000008040">}>
// CHECK-NEXT:    %[[Y:.*]] = "nn.conv"(%0, %[[W]], %[[B]])
// CHECK-NEXT:    func.return %[[Y]]
// CHECK-NOT:     nn.mul

builtin.module {
  func.func @main(%0: tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [2, 2, 1, 1], "0x0000803F0000803F0000803F0000803F">}> : () -> tensor<2x2x1x1xf32>
    %2 = "nn.constant"() <{value = #nn.weight<"f32", [2], "0x0000803F0000803F">}> : () -> tensor<2xf32>
    %3 = "nn.conv"(%0, %1, %2) <{strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, group = 1 : i64, activation = "none", act_alpha = 0.000000e+00 : f64, act_beta = 0.000000e+00 : f64, operandSegmentSizes = array<i32: 1, 1, 1, 0>}> : (tensor<1x2x3x3xf32>, tensor<2x2x1x1xf32>, tensor<2xf32>) -> tensor<1x2x3x3xf32>
    %4 = "nn.constant"() <{value = #nn.weight<"f32", [2, 1, 1], "0x0000004000008040">}> : () -> tensor<2x1x1xf32>
    %5 = "nn.mul"(%3, %4) : (tensor<1x2x3x3xf32>, tensor<2x1x1xf32>) -> tensor<1x2x3x3xf32>
    func.return %5 : tensor<1x2x3x3xf32>
  }
}

// -----

// Negative: the (3,) constant scales the last axis, not the channels: unchanged.
// CHECK-LABEL: func.func @main
// CHECK:         %[[C:.*]] = "nn.conv"(%0, %1)
// CHECK:         "nn.mul"(%[[C]], %{{.*}})

builtin.module {
  func.func @main(%0: tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [2, 2, 1, 1], "0x0000803F0000803F0000803F0000803F">}> : () -> tensor<2x2x1x1xf32>
    %2 = "nn.conv"(%0, %1) <{strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, group = 1 : i64, activation = "none", act_alpha = 0.000000e+00 : f64, act_beta = 0.000000e+00 : f64, operandSegmentSizes = array<i32: 1, 1, 0, 0>}> : (tensor<1x2x3x3xf32>, tensor<2x2x1x1xf32>) -> tensor<1x2x3x3xf32>
    %3 = "nn.constant"() <{value = #nn.weight<"f32", [3], "0x000000400000804000000041">}> : () -> tensor<3xf32>
    %4 = "nn.mul"(%2, %3) : (tensor<1x2x3x3xf32>, tensor<3xf32>) -> tensor<1x2x3x3xf32>
    func.return %4 : tensor<1x2x3x3xf32>
  }
}
