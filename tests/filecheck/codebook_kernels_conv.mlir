// RUN: nnc-opt %s -p 'codebook-kernels{min-params=0}' | filecheck %s

// A 1x1 conv (2 outputs, 3 inputs, values -1 / 0.5 / 2) becomes a conv1x1-layout
// codebook gemm over the pixels: row 0 = (0.5, -1, 2) -> indices (1, 0, 2), row 1 =
// (2, 2, 0.5) -> (2, 2, 1); per input channel k the byte j holds output j's index.

// CHECK-LABEL: func.func @main
// CHECK-DAG:     %[[I:.*]] = "nn.constant"() <{value = #nn.weight<"u8", [1, 3, 8], "0x010200000000000000020000000000000201000000000000">}>
// CHECK:         %[[Y:.*]] = "nn.codebook_gemm"(%0, %[[I]], %{{.*}}, %{{.*}}) <{n = 2 : i64, bits = 4 : i64, layout = "conv1x1"
// CHECK-NOT:     "nn.conv"
// CHECK:         func.return %[[Y]]

builtin.module {
  func.func @main(%0: tensor<1x3x2x2xf32>) -> tensor<1x2x2x2xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [2, 3, 1, 1], "0x0000003F000080BF0000004000000040000000400000003F">}> : () -> tensor<2x3x1x1xf32>
    %2 = "nn.constant"() <{value = #nn.weight<"f32", [2], "0x0000803F00000040">}> : () -> tensor<2xf32>
    %3 = "nn.conv"(%0, %1, %2) <{strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, group = 1 : i64, activation = "none", act_alpha = 0.000000e+00 : f64, act_beta = 0.000000e+00 : f64, operandSegmentSizes = array<i32: 1, 1, 1, 0>}> : (tensor<1x3x2x2xf32>, tensor<2x3x1x1xf32>, tensor<2xf32>) -> tensor<1x2x2x2xf32>
    func.return %3 : tensor<1x2x2x2xf32>
  }
}
