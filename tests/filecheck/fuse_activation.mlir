// RUN: nnc-opt --split-input-file %s -p fuse-activation | filecheck %s

// conv + per-channel constant (1, 2, 1, 1) + relu -> conv with bias (1, 2) and relu epilogue.
// CHECK-LABEL: func.func @main
// CHECK-NEXT:    %[[W:.*]] = "nn.constant"
// CHECK-NEXT:    %[[B:.*]] = "nn.constant"() <{value = #nn.weight<"f32", [2], "0x0000803F00000040">}>
// CHECK-NEXT:    %[[Y:.*]] = "nn.conv"(%0, %[[W]], %[[B]])
// CHECK-SAME:    activation = "relu"
// CHECK-SAME:    operandSegmentSizes = array<i32: 1, 1, 1, 0>
// CHECK-NEXT:    func.return %[[Y]]

builtin.module {
  func.func @main(%0: tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [2, 2, 1, 1], "0x0000803F0000803F0000803F0000803F">}> : () -> tensor<2x2x1x1xf32>
    %2 = "nn.conv"(%0, %1) <{strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, group = 1 : i64, activation = "none", act_alpha = 0.000000e+00 : f64, act_beta = 0.000000e+00 : f64, operandSegmentSizes = array<i32: 1, 1, 0, 0>}> : (tensor<1x2x3x3xf32>, tensor<2x2x1x1xf32>) -> tensor<1x2x3x3xf32>
    %3 = "nn.constant"() <{value = #nn.weight<"f32", [1, 2, 1, 1], "0x0000803F00000040">}> : () -> tensor<1x2x1x1xf32>
    %4 = "nn.add"(%2, %3) : (tensor<1x2x3x3xf32>, tensor<1x2x1x1xf32>) -> tensor<1x2x3x3xf32>
    %5 = "nn.relu"(%4) : (tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32>
    func.return %5 : tensor<1x2x3x3xf32>
  }
}

// -----

// x + conv(x) then clip(0, 6) -> conv with residual %0 and clip epilogue (alpha=min, beta=max).
// CHECK-LABEL: func.func @main
// CHECK:         %[[Y:.*]] = "nn.conv"(%0, %1, %0)
// CHECK-SAME:    activation = "clip", act_alpha = 0.000000e+00 : f64, act_beta = 6.000000e+00 : f64
// CHECK-SAME:    operandSegmentSizes = array<i32: 1, 1, 0, 1>
// CHECK-NEXT:    func.return %[[Y]]

builtin.module {
  func.func @main(%0: tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [2, 2, 1, 1], "0x0000803F0000803F0000803F0000803F">}> : () -> tensor<2x2x1x1xf32>
    %2 = "nn.conv"(%0, %1) <{strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, group = 1 : i64, activation = "none", act_alpha = 0.000000e+00 : f64, act_beta = 0.000000e+00 : f64, operandSegmentSizes = array<i32: 1, 1, 0, 0>}> : (tensor<1x2x3x3xf32>, tensor<2x2x1x1xf32>) -> tensor<1x2x3x3xf32>
    %3 = "nn.add"(%0, %2) : (tensor<1x2x3x3xf32>, tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32>
    %4 = "nn.clip"(%3) <{min = 0.000000e+00 : f64, max = 6.000000e+00 : f64}> : (tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32>
    func.return %4 : tensor<1x2x3x3xf32>
  }
}

// -----

// gemm + (4,) constant + sigmoid -> gemm with c and sigmoid epilogue.
// CHECK-LABEL: func.func @main
// CHECK:         %[[C:.*]] = "nn.constant"() <{value = #nn.weight<"f32", [4], "0x0000803F000000400000404000008040">}>
// CHECK-NEXT:    %[[Y:.*]] = "nn.gemm"(%0, %1, %[[C]])
// CHECK-SAME:    activation = "sigmoid"
// CHECK-NEXT:    func.return %[[Y]]

builtin.module {
  func.func @main(%0: tensor<3x2xf32>) -> tensor<3x4xf32> attributes {nn.input_names = ["a"], nn.output_names = ["y"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [2, 4], "0x0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F">}> : () -> tensor<2x4xf32>
    %2 = "nn.gemm"(%0, %1) <{trans_a = 0 : i64, trans_b = 0 : i64, alpha = 1.000000e+00 : f64, beta = 1.000000e+00 : f64, activation = "none", act_alpha = 0.000000e+00 : f64, act_beta = 0.000000e+00 : f64}> : (tensor<3x2xf32>, tensor<2x4xf32>) -> tensor<3x4xf32>
    %3 = "nn.constant"() <{value = #nn.weight<"f32", [4], "0x0000803F000000400000404000008040">}> : () -> tensor<4xf32>
    %4 = "nn.add"(%2, %3) : (tensor<3x4xf32>, tensor<4xf32>) -> tensor<3x4xf32>
    %5 = "nn.sigmoid"(%4) : (tensor<3x4xf32>) -> tensor<3x4xf32>
    func.return %5 : tensor<3x4xf32>
  }
}

// -----

// Negative: exp is not an epilogue kind; the second conv's result has two users.
// CHECK-LABEL: func.func @main
// CHECK:         %[[C1:.*]] = "nn.conv"(%0, %1)
// CHECK-SAME:    activation = "none"
// CHECK-NEXT:    "nn.exp"(%[[C1]])
// CHECK:         %[[C2:.*]] = "nn.conv"(%0, %4)
// CHECK-SAME:    activation = "none"
// CHECK-NEXT:    "nn.relu"(%[[C2]])

builtin.module {
  func.func @main(%0: tensor<1x2x3x3xf32>) -> (tensor<1x2x3x3xf32>, tensor<1x2x3x3xf32>, tensor<1x2x3x3xf32>) attributes {nn.input_names = ["x"], nn.output_names = ["e", "r", "c2"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [2, 2, 1, 1], "0x0000803F0000803F0000803F0000803F">}> : () -> tensor<2x2x1x1xf32>
    %2 = "nn.conv"(%0, %1) <{strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, group = 1 : i64, activation = "none", act_alpha = 0.000000e+00 : f64, act_beta = 0.000000e+00 : f64, operandSegmentSizes = array<i32: 1, 1, 0, 0>}> : (tensor<1x2x3x3xf32>, tensor<2x2x1x1xf32>) -> tensor<1x2x3x3xf32>
    %3 = "nn.exp"(%2) : (tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32>
    %4 = "nn.constant"() <{value = #nn.weight<"f32", [2, 2, 1, 1], "0x00000040000000400000004000000040">}> : () -> tensor<2x2x1x1xf32>
    %5 = "nn.conv"(%0, %4) <{strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, group = 1 : i64, activation = "none", act_alpha = 0.000000e+00 : f64, act_beta = 0.000000e+00 : f64, operandSegmentSizes = array<i32: 1, 1, 0, 0>}> : (tensor<1x2x3x3xf32>, tensor<2x2x1x1xf32>) -> tensor<1x2x3x3xf32>
    %6 = "nn.relu"(%5) : (tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32>
    func.return %3, %6, %5 : tensor<1x2x3x3xf32>, tensor<1x2x3x3xf32>, tensor<1x2x3x3xf32>
  }
}
