// RUN: nnc-opt %s -p 'codebook-kernels{min-params=0}' | filecheck %s

// 3x4 weight with 3 distinct values (-1, 0.5, 2): 4-bit indices, one 16-column block,
// per k 8 bytes (column j in the low nibble of byte j). Row 0 = (0.5, -1, 0.5, 2) ->
// indices (1, 0, 1, 2); row 1 -> (2, 2, 0, 1); row 2 -> (1, 1, 1, 0). So k=0 holds
// bytes 01 02 01, k=1: 00 02 01, k=2: 01 00 01, k=3: 02 01 00.

// CHECK-LABEL: func.func @main
// CHECK-DAG:     %[[I:.*]] = "nn.constant"() <{value = #nn.weight<"u8", [1, 4, 8], "0x0102010000000000000201000000000001000100000000000201000000000000">}>
// CHECK-DAG:     %[[C:.*]] = "nn.constant"() <{value = #nn.weight<"f32", [16], "0x000080BF0000003F00000040000000000000
// CHECK:         %[[Y:.*]] = "nn.codebook_gemm"(%0, %[[I]], %[[C]], %{{.*}}) <{n = 3 : i64, bits = 4 : i64
// CHECK-NOT:     "nn.gemm"
// CHECK:         func.return %[[Y]]

builtin.module {
  func.func @main(%0: tensor<1x4xf32>) -> tensor<1x3xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [3, 4], "0x0000003F000080BF0000003F000000400000004000000040000080BF0000003F0000003F0000003F0000003F000080BF">}> : () -> tensor<3x4xf32>
    %2 = "nn.constant"() <{value = #nn.weight<"f32", [3], "0x0000803F0000004000004040">}> : () -> tensor<3xf32>
    %3 = "nn.gemm"(%0, %1, %2) <{trans_a = 0 : i64, trans_b = 1 : i64, alpha = 1.000000e+00 : f64, beta = 1.000000e+00 : f64, activation = "none", act_alpha = 0.000000e+00 : f64, act_beta = 0.000000e+00 : f64}> : (tensor<1x4xf32>, tensor<3x4xf32>, tensor<3xf32>) -> tensor<1x3xf32>
    func.return %3 : tensor<1x3xf32>
  }
}

