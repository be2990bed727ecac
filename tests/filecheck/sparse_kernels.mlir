// RUN: nnc-opt --split-input-file %s -p 'sparse-kernels{min-sparsity-gemm=0.8}' | filecheck %s

// 4x4 weight with 2 non-zeros (87.5% sparse): W[0,1] = 2, W[3,2] = -1 -> CSR
// row_ptr (0, 1, 1, 1, 2), col_idx (1, 2), values (2, -1).

// CHECK-LABEL: func.func @main
// CHECK:         %[[V:.*]] = "nn.constant"() <{value = #nn.weight<"f32", [2], "0x00000040000080BF">}>
// CHECK-NEXT:    %[[Y:.*]] = "nn.sparse_gemm"(%0, %[[V]], %{{.*}}) <{row_ptr = #nn.weight<"i32", [5], "0x0000000001000000010000000100000002000000">, col_idx = #nn.weight<"i32", [2], "0x0100000002000000">, k = 4 : i64, layout = "gemm"
// CHECK-NEXT:    func.return %[[Y]]
// CHECK-NOT:     nn.gemm

builtin.module {
  func.func @main(%0: tensor<1x4xf32>) -> tensor<1x4xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [4, 4], "0x0000000000000040000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000080BF00000000">}> : () -> tensor<4x4xf32>
    %2 = "nn.constant"() <{value = #nn.weight<"f32", [4], "0x0000803F0000803F0000803F0000803F">}> : () -> tensor<4xf32>
    %3 = "nn.gemm"(%0, %1, %2) <{trans_a = 0 : i64, trans_b = 1 : i64, alpha = 1.000000e+00 : f64, beta = 1.000000e+00 : f64, activation = "none", act_alpha = 0.000000e+00 : f64, act_beta = 0.000000e+00 : f64}> : (tensor<1x4xf32>, tensor<4x4xf32>, tensor<4xf32>) -> tensor<1x4xf32>
    func.return %3 : tensor<1x4xf32>
  }
}

// -----

// Dense weight: below the break-even sparsity, unchanged.

// CHECK-LABEL: func.func @main
// CHECK:         "nn.gemm"
// CHECK-NOT:     nn.sparse_gemm

builtin.module {
  func.func @main(%0: tensor<1x4xf32>) -> tensor<1x4xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [4, 4], "0x0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F">}> : () -> tensor<4x4xf32>
    %2 = "nn.gemm"(%0, %1) <{trans_a = 0 : i64, trans_b = 1 : i64, alpha = 1.000000e+00 : f64, beta = 1.000000e+00 : f64, activation = "none", act_alpha = 0.000000e+00 : f64, act_beta = 0.000000e+00 : f64}> : (tensor<1x4xf32>, tensor<4x4xf32>) -> tensor<1x4xf32>
    func.return %2 : tensor<1x4xf32>
  }
}
