# Install rules and the CMake package (find_package(Kiln CONFIG) -> Kiln::kiln).
#
# Components of `cmake --install` (all but `wheel` make a plain install):
#   library  libkiln.so, the public headers include/kiln, lib/cmake/Kiln
#   cli      the `kiln` command (bin/kiln)
#   python   the `kiln` Python package (KILN_PYTHON_INSTALL_DIR/kiln)
#   wheel    the wheel's layout, defined only when scikit-build-core configures
#            (pyproject.toml installs just this component)
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# The public headers include only the standard library and each other: an
# installed header must never reach into src/.
file(GLOB _kiln_public_headers ${PROJECT_SOURCE_DIR}/include/kiln/*.h)
foreach(_header ${_kiln_public_headers})
  file(STRINGS ${_header} _includes REGEX "^#include \"")
  foreach(_line ${_includes})
    if(NOT _line MATCHES "^#include \"kiln/[a-z_]+\\.h\"")
      message(FATAL_ERROR "${_header}: '${_line}' is not installable (public headers include only kiln/*.h)")
    endif()
  endforeach()
endforeach()

set(KILN_GENERATED_INCLUDE ${CMAKE_BINARY_DIR}/generated/include)
configure_file(${CMAKE_CURRENT_LIST_DIR}/version.h.in ${KILN_GENERATED_INCLUDE}/kiln/version.h @ONLY)

# libkiln.so: the objects of kiln_api and, through its static layers, what
# they use. The layers' own dependencies (oneDNN, protobuf, fmt, CUDA, ...)
# become the shared library's, so Kiln::kiln exports no link dependency.
add_library(kiln_shared SHARED $<TARGET_OBJECTS:kiln_api>)
# Whatever kiln_api links (its DEPS in src/CMakeLists.txt), so a new layer
# under the API is in the shared library without an edit here.
target_link_libraries(kiln_shared PRIVATE $<TARGET_PROPERTY:kiln_api,INTERFACE_LINK_LIBRARIES>)
target_include_directories(kiln_shared INTERFACE
  $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include> $<BUILD_INTERFACE:${KILN_GENERATED_INCLUDE}>
  $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
target_compile_features(kiln_shared INTERFACE cxx_std_20)
set_target_properties(kiln_shared PROPERTIES
  OUTPUT_NAME kiln EXPORT_NAME kiln
  VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR}
  INSTALL_RPATH_USE_LINK_PATH ON)
add_library(Kiln::kiln ALIAS kiln_shared)

# Installed binaries keep the run paths of libraries outside the system's
# (the CUDA toolkit's), and lose those into the build tree.
set_target_properties(kiln PROPERTIES INSTALL_RPATH_USE_LINK_PATH ON)

install(TARGETS kiln_shared EXPORT KilnTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT library)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/kiln ${KILN_GENERATED_INCLUDE}/kiln
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT library FILES_MATCHING PATTERN "*.h")
set(_kiln_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/Kiln)
install(EXPORT KilnTargets NAMESPACE Kiln:: DESTINATION ${_kiln_cmake_dir} COMPONENT library)
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/KilnConfig.cmake.in
  ${CMAKE_BINARY_DIR}/cmake/KilnConfig.cmake INSTALL_DESTINATION ${_kiln_cmake_dir}
  PATH_VARS CMAKE_INSTALL_INCLUDEDIR CMAKE_INSTALL_BINDIR)
# 0.x: a minor release may change the API, so only the same minor matches.
write_basic_package_version_file(${CMAKE_BINARY_DIR}/cmake/KilnConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/cmake/KilnConfig.cmake ${CMAKE_BINARY_DIR}/cmake/KilnConfigVersion.cmake
  DESTINATION ${_kiln_cmake_dir} COMPONENT library)

install(TARGETS kiln RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT cli)

if(TARGET kiln_core_py)
  set_target_properties(kiln_core_py PROPERTIES INSTALL_RPATH_USE_LINK_PATH ON)
  file(GLOB _kiln_py_files ${PROJECT_SOURCE_DIR}/python/kiln/*.py)
  # site-packages relative to the prefix, as the project's Python lays it out.
  execute_process(COMMAND ${KILN_PYTHON} -c
    "import sysconfig; print(sysconfig.get_path('platlib', vars={'base': '', 'platbase': ''}).lstrip('/'))"
    OUTPUT_VARIABLE _kiln_site OUTPUT_STRIP_TRAILING_WHITESPACE)
  set(KILN_PYTHON_INSTALL_DIR "${_kiln_site}" CACHE STRING "Where `cmake --install` puts the kiln Python package, relative to the prefix")
  install(TARGETS kiln_core_py LIBRARY DESTINATION ${KILN_PYTHON_INSTALL_DIR}/kiln COMPONENT python)
  install(FILES ${_kiln_py_files} DESTINATION ${KILN_PYTHON_INSTALL_DIR}/kiln COMPONENT python)

  # The wheel (pyproject.toml): the package at the wheel's root (site-packages)
  # and the kiln command among its scripts (the environment's bin/).
  if(DEFINED SKBUILD)
    install(TARGETS kiln_core_py LIBRARY DESTINATION kiln COMPONENT wheel EXCLUDE_FROM_ALL)
    install(FILES ${_kiln_py_files} DESTINATION kiln COMPONENT wheel EXCLUDE_FROM_ALL)
    install(TARGETS kiln RUNTIME DESTINATION ${SKBUILD_SCRIPTS_DIR} COMPONENT wheel EXCLUDE_FROM_ALL)
  endif()
endif()
